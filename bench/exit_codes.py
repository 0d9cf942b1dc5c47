"""Exit codes of every mnist-bench command and process: the CLI, the worker, the benchmark driver, the tools.

0 success; 1 a run, benchmark or check failed (or regressed); 2 bad input; 3 the
device kind is not there (worker); 4 the loss diverged (worker); 130 interrupted
(Ctrl-C or SIGTERM), as a shell reports SIGINT. ``mnist-bench compare`` also exits 3
when it cannot judge (:mod:`mnist_bench.bench.results.compare`).
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DEVICE = 3
EXIT_DIVERGED = 4
EXIT_INTERRUPTED = 130
