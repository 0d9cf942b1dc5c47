"""mnist-bench's pytest plug-in: parity checks in any project's tests.

Registered as a ``pytest11`` entry point, so installing mnist-bench is all a project needs::

    def test_same_model(mnist_parity):
        mnist_parity.numerical("mine", against=["torch"]).assert_passed()

    def test_same_accuracy(mnist_parity):
        mnist_parity.accuracy("mine", against="torch", seeds=2).assert_passed()

The MNIST files come from ``--mnist-parity-data DIR``, else ``MNIST_BENCH_DATA``, else mnist-bench's
download cache. Results are cached for the session, so several tests may assert on one probe.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("mnist-bench", "mnist-bench parity checks")
    group.addoption("--mnist-parity-data", default=None,
                    help="folder with the MNIST IDX files (default: $MNIST_BENCH_DATA, then the download cache)")
    group.addoption("--mnist-parity-threads", type=int, default=2, help="threads per probe process (default 2)")


class ParityChecks:
    """What the ``mnist_parity`` fixture gives a test: :mod:`mnist_bench.parity`, cached per session."""

    def __init__(self, data_dir: str | None, threads: int, work) -> None:
        self.data_dir, self.threads, self.work = data_dir, threads, work
        self._cache: dict = {}

    def numerical(self, candidate: str, against=("torch",), modes=None, device: str = "cpu"):
        from mnist_bench import parity

        key = ("numerical", candidate, tuple(against), None if modes is None else tuple(modes), device)
        if key not in self._cache:
            self._cache[key] = parity.numerical(candidate, against, modes=modes, data_dir=self.data_dir,
                                                work=self.work.mktemp("parity"), threads=self.threads, device=device)
        return self._cache[key]

    def accuracy(self, candidate: str, against: str = "torch", seeds: int = 2, **options):
        from mnist_bench import parity

        key = ("accuracy", candidate, against, seeds, tuple(sorted((k, str(v)) for k, v in options.items())))
        if key not in self._cache:
            self._cache[key] = parity.accuracy(candidate, against, seeds=seeds, data_dir=self.data_dir,
                                               work=self.work.mktemp("accuracy"), **options)
        return self._cache[key]


@pytest.fixture(scope="session")
def mnist_parity(request, tmp_path_factory) -> ParityChecks:
    data = request.config.getoption("--mnist-parity-data") or os.environ.get("MNIST_BENCH_DATA")
    return ParityChecks(data, request.config.getoption("--mnist-parity-threads"), tmp_path_factory)
