"""The test command's two workers (tests/machine_share.py): own CPUs each, and quiet tests never beside spread ones.

A small suite of its own runs under ``-n 2 --dist loadgroup``; each of its tests writes when it
started and ended, on which worker and CPUs.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import machine_share

TESTS_DIR = Path(__file__).resolve().parent

SUITE = '''
import json, os, time
import pytest

def note(name, seconds):
    start = time.time()
    time.sleep(seconds)
    with open(os.environ["NOTES"], "a") as fh:
        fh.write(json.dumps({"name": name, "start": start, "end": time.time(), "cpus": sorted(os.sched_getaffinity(0)),
                             "worker": os.getpid()}) + "\\n")
'''
# First in each file, so that without the locks a quiet test and the spread one would start together.
FIRST_IN_FILE = {"a": "@pytest.mark.quiet", "b": "@pytest.mark.all_cpus", "c": "@pytest.mark.quiet"}
TESTS = '''
{mark}
def test_first_{f}():
    note("{kind}-{f}", 1.5)

@pytest.mark.parametrize("i", range(4))
def test_ordinary_{f}(i):
    note(f"ordinary-{f}-{{i}}", 0.4)
'''
CONFTEST = """
from machine_share import (pytest_collection_finish, pytest_collection_modifyitems, pytest_configure,
                           pytest_runtest_protocol, pytest_unconfigure)
"""


def test_shares_are_disjoint_cover_every_cpu_and_differ_by_one_at_most(monkeypatch):
    for cpus in ([0, 1], [0, 1, 2], list(range(16)), [3, 5, 8]):
        monkeypatch.setattr(machine_share, "ALL_CPUS", cpus)
        for count in range(1, len(cpus) + 1):
            shares = [machine_share.share_of(i, count) for i in range(count)]
            assert sorted(c for share in shares for c in share) == cpus
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


class FakeItem:
    nodeid = "fake"

    def __init__(self, *marks: str) -> None:
        self.marks = marks

    def get_closest_marker(self, name: str):
        return name if name in self.marks else None


def test_a_spread_test_waits_for_a_running_quiet_test_and_the_next_quiet_one_waits_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv(machine_share.LOCKS_ENV, str(tmp_path))
    events: list[str] = []
    first_running, let_first_end = threading.Event(), threading.Event()

    def quiet(name: str, hold: threading.Event | None = None) -> None:
        with machine_share.machine_share(FakeItem("quiet")):
            events.append(f"{name} starts")
            if hold:
                first_running.set()
                hold.wait(10)
            events.append(f"{name} ends")

    def spread() -> None:
        with machine_share.machine_share(FakeItem("all_cpus")):
            events.append("spread starts")
            events.append(f"on {sorted(os.sched_getaffinity(0)) == machine_share.ALL_CPUS and 'every' or 'some'} CPU")
            time.sleep(0.2)
            events.append("spread ends")

    def ordinary() -> None:
        with machine_share.machine_share(FakeItem()):
            events.append("ordinary runs")

    threads = [threading.Thread(target=quiet, args=("first", let_first_end))]
    threads[0].start()
    assert first_running.wait(10)
    for target, args in ((spread, ()), (quiet, ("second",))):  # the spread test waits; the quiet one after it too
        threads.append(threading.Thread(target=target, args=args))
        threads[-1].start()
        time.sleep(0.3)
    ordinary()  # an ordinary test waits for nobody
    assert events == ["first starts", "ordinary runs"]
    let_first_end.set()
    for thread in threads:
        thread.join(10)
    assert events == ["first starts", "ordinary runs", "first ends", "spread starts", "on every CPU", "spread ends",
                      "second starts", "second ends"]


@pytest.mark.all_cpus  # runs two workers of its own
@pytest.mark.timeout(300)
def test_two_workers_own_a_cpu_each_and_quiet_tests_never_run_beside_a_spread_one(tmp_path):
    assert len(machine_share.ALL_CPUS) >= 2, "this test needs a machine with two CPUs, as the test command does"
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    for f, mark in FIRST_IN_FILE.items():
        kind = mark.rsplit(".", 1)[1]
        (suite / f"test_{f}.py").write_text(SUITE + TESTS.format(f=f, mark=mark, kind=kind))
    notes = tmp_path / "notes.jsonl"
    env = {k: v for k, v in os.environ.items() if k != machine_share.LOCKS_ENV}  # its own locks, not ours
    env.update(NOTES=str(notes), PYTHONPATH=os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder",
                           "-p", "no:cacheprovider", "-q", str(suite)], cwd=suite, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = [json.loads(line) for line in notes.read_text().splitlines()]
    spread = [r for r in ran if r["name"].startswith("all_cpus")]
    quiet = [r for r in ran if r["name"].startswith("quiet")]
    in_share = [r for r in ran if r not in spread]
    assert len(spread) == 1 and len(quiet) == 2 and len(in_share) == 14
    [s] = spread
    assert s["cpus"] == machine_share.ALL_CPUS
    beside = [q["name"] for q in quiet if q["start"] < s["end"] and s["start"] < q["end"]]
    assert not beside, f"the all_cpus test ran beside {beside}"
    # Every other test: on its worker's own share of the CPUs; both workers used, their shares disjoint.
    by_worker: dict[int, set] = {}
    for r in in_share:
        by_worker.setdefault(r["worker"], set()).add(tuple(r["cpus"]))
    assert len(by_worker) == 2 and all(len(shares) == 1 for shares in by_worker.values()), by_worker
    first, second = (set(next(iter(shares))) for shares in by_worker.values())
    assert not first & second and first | second == set(machine_share.ALL_CPUS), by_worker
