"""``python -m mnist_bench.bench.benchmarks``: see :mod:`mnist_bench.bench.benchmarks.driver`."""

import sys

from mnist_bench.bench.benchmarks.driver import main

if __name__ == "__main__":
    sys.exit(main())
