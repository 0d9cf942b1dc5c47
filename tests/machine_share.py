"""Two test workers on one machine (pytest-xdist), each on its own CPUs.

The suite runs in two worker processes (scripts/test.sh: ``-n 2 --dist loadgroup``). Most tests
train on one thread, which the harness pins to the first CPU it may use: one after another they
leave the other CPU idle, and two workers sharing every CPU would pin both to the same one. So each
worker gets its own share of the CPUs, and everything it starts inherits that share: a test sees a
smaller machine, and the contention monitor, which watches a run's own CPUs, sees only its own
worker's processes there. The rules that keep this honest:

* ``all_cpus``: a test that needs more CPUs than a share (data-parallel training on two devices)
  gets every CPU, beside the other worker's tests: it measures nothing, so sharing is harmless.
* ``quiet``: a test that measures speed or asserts its CPUs quiet never runs beside an ``all_cpus``
  one, the only kind that reaches into another worker's CPUs. Quiet tests hold a read lock, an
  ``all_cpus`` test the write lock, and a waiting writer goes first.
* Tests that share a session fixture run on one worker (``xdist_group``), so it is built once;
  every other test runs with the rest of its module, so module-scoped fixtures are built once.
* The longest groups are handed out first, so no worker is left with a long tail.

Without workers (``-n 0``) the locks are never contended and every test has every CPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import pytest

LOCKS_ENV = "MNIST_BENCH_TEST_LOCKS"
# Session fixtures, and the group of the tests that use them.
SESSION_GROUPS = {"one_epoch": "one-epoch", "slurm_cluster": "slurm-cluster"}
# Handed out first: the longest groups, longest first (from .ci/run's --durations). A group not
# named here is handed out later; that costs wall time, never a result.
FIRST = ("one-epoch", "tests/test_parity.py", "slurm-cluster", "tests/test_plugins.py",
         "tests/test_data_parallel.py", "tests/test_harness.py", "tests/test_run_safety.py", "tests/test_load.py",
         "tests/test_benchmarks.py", "tests/test_overhead.py")
# The CPUs this session may use, read when conftest.py imports this module: before a worker takes its share.
ALL_CPUS = sorted(os.sched_getaffinity(0))


def configure(config) -> None:
    """The controller makes the lock folder (its workers inherit it); a worker takes its share of the CPUs."""
    worker = getattr(config, "workerinput", None)
    if worker is None:
        if LOCKS_ENV not in os.environ:
            os.environ[LOCKS_ENV] = tempfile.mkdtemp(prefix="mnist-bench-test-locks-")
            config._mnist_bench_locks = os.environ[LOCKS_ENV]
        return
    index, count = int(worker["workerid"].removeprefix("gw")), int(worker["workercount"])
    if count > len(ALL_CPUS):
        raise pytest.UsageError(f"{count} test workers on {len(ALL_CPUS)} CPUs: each worker needs a CPU of its "
                                f"own; use -n {len(ALL_CPUS)} or fewer")
    os.sched_setaffinity(0, share_of(index, count))
    # The pytest runs the tests start (the benchmark driver, the plug-in examples) are not xdist workers:
    # pytest-benchmark would read these and warn that benchmarks are off.
    for name in [name for name in os.environ if name.startswith("PYTEST_XDIST_")]:
        del os.environ[name]


def unconfigure(config) -> None:
    folder = getattr(config, "_mnist_bench_locks", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(LOCKS_ENV, None)


def share_of(index: int, count: int) -> list[int]:
    """Worker ``index``'s CPUs: every ``count``-th one, so the shares are disjoint and differ by one CPU at most."""
    return ALL_CPUS[index::count]


def group_of(item) -> str:
    for fixture, group in SESSION_GROUPS.items():
        if fixture in item.fixturenames:
            return group
    return item.nodeid.split("::", 1)[0]


def assign_groups(items: list) -> None:
    """Give each test its group (unless it names one) and hand out the ``FIRST`` groups first."""
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group_of(item)))
    rank = {group: i for i, group in enumerate(FIRST)}

    def order(indexed):
        index, item = indexed
        return rank.get(item.get_closest_marker("xdist_group").args[0], len(rank)), index
    items[:] = [item for _, item in sorted(enumerate(items), key=order)]


def check_grouped(config, items: list) -> None:
    """Fail the run, loudly, if pytest-xdist dropped the groups: on pytest 9.2 it does so silently (pytest-xdist#1386)."""
    if getattr(config, "workerinput", None) is None or not config.getvalue("loadgroup"):
        return
    lost = [item.nodeid for item in items if "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(f"pytest-xdist did not group {len(lost)} tests (first: {lost[0]}): with pytest "
                                f"{pytest.__version__} its --dist loadgroup no longer marks a test's group "
                                "(pytest-xdist#1386); install the versions in constraints.txt")


@contextlib.contextmanager
def _flock(path: Path, how: int):
    with open(path, "a") as handle:
        fcntl.flock(handle, how)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _cpus(cpus: list[int]):
    share = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, share)


@contextlib.contextmanager
def machine_share(item):
    """Around each test (``pytest_runtest_protocol``, outside pytest-timeout's clock): its lock and CPUs."""
    quiet, spread = item.get_closest_marker("quiet"), item.get_closest_marker("all_cpus")
    assert not (quiet and spread), f"{item.nodeid}: a quiet test cannot also spread over every CPU"
    if not (quiet or spread):
        yield
        return
    folder = Path(os.environ[LOCKS_ENV])
    gate, machine = folder / "gate", folder / "machine"
    with contextlib.ExitStack() as held:
        if spread:
            held.enter_context(_flock(gate, fcntl.LOCK_EX))  # quiet tests arriving now queue behind it
            held.enter_context(_flock(machine, fcntl.LOCK_EX))
            held.enter_context(_cpus(ALL_CPUS))
        else:
            with _flock(gate, fcntl.LOCK_EX):
                held.enter_context(_flock(machine, fcntl.LOCK_SH))
        yield


# The hooks, for a conftest to import (tests/conftest.py, and the small suite tests/test_machine_share.py runs).

def pytest_configure(config):
    configure(config)


def pytest_unconfigure(config):
    unconfigure(config)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    assign_groups(items)


@pytest.hookimpl(trylast=True)  # after pytest-xdist has read them
def pytest_collection_finish(session):
    check_grouped(session.config, session.items)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-timeout's clock: waiting is not running
def pytest_runtest_protocol(item, nextitem):
    with machine_share(item):
        yield
