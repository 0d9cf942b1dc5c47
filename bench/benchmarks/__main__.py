"""``python -m bench.benchmarks``: see :mod:`bench.benchmarks.driver`."""

import sys

from bench.benchmarks.driver import main

if __name__ == "__main__":
    sys.exit(main())
