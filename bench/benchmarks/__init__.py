"""The pytest-benchmark suite: one training-step and one evaluation-step benchmark per backend, mode and batch size.

A pytest run covers one backend (``--mnist-backend NAME``), so each framework is
imported only in its own process; ``python -m mnist_bench.bench.benchmarks`` runs one pytest
process per backend and writes ``results/benchmarks/<UTC time>/<backend>.json``.
See ``bench/README.md``. Importing this package imports no framework.
"""
