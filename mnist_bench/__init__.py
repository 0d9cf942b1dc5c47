"""mnist-bench's public API, under one name that is clearly this project's.

The project's folders keep the design's names (``common/``, ``bench/``, ``backends/``) but are
installed *inside* this package (``mnist_bench.common`` and so on, mapped in ``pyproject.toml``),
so installing mnist-bench never adds a top-level ``common`` or ``bench`` that could collide with
another distribution's. Code outside this repository imports from here:

- :class:`Backend` and :class:`ImplementationSpec`: what an implementation is and how it is described;
- :mod:`mnist_bench.parity`: check an implementation against another and against the float64 oracle;
- the pytest plug-in (``mnist_bench.pytest_plugin``, registered as a ``pytest11`` entry point).

Importing this package imports no framework.
"""
