"""The test command's two workers (tests/machine_share.py): own CPUs each, and alone means alone.

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
ORDINARY = '''
@pytest.mark.parametrize("i", range(4))
def test_ordinary_{f}(i):
    note(f"ordinary-{f}-{{i}}", 0.4)
'''
ALONE = '''
@pytest.mark.alone
def test_alone_{f}():
    note("alone-{f}", 1.0)
'''
CONFTEST = '''
import pytest
import machine_share

def pytest_configure(config):
    config.addinivalue_line("markers", "alone: x")
    config.addinivalue_line("markers", "all_cpus: x")
    machine_share.configure(config)

def pytest_unconfigure(config):
    machine_share.unconfigure(config)

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    machine_share.assign_groups(items)

@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    machine_share.check_grouped(session.config, session.items)

_share = machine_share.MachineShare()

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    with _share.around(item, nextitem):
        yield
'''


def test_shares_are_disjoint_cover_every_cpu_and_differ_by_one_at_most(monkeypatch):
    for cpus in ([0, 1], [0, 1, 2], list(range(16)), [3, 5, 8]):
        monkeypatch.setattr(machine_share, "ALL_CPUS", cpus)
        for count in range(1, len(cpus) + 1):
            shares = [machine_share.share_of(i, count) for i in range(count)]
            assert sorted(c for share in shares for c in share) == cpus
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


class FakeItem:
    def __init__(self, *marks: str) -> None:
        self.marks = marks

    def get_closest_marker(self, name: str):
        return name if name in self.marks else None


def test_an_alone_test_waits_for_the_running_test_and_the_next_one_waits_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv(machine_share.LOCKS_ENV, str(tmp_path))
    events: list[str] = []
    first_running, let_first_end = threading.Event(), threading.Event()

    def ordinary(name: str, hold: threading.Event | None = None) -> None:
        with machine_share.MachineShare().around(FakeItem(), None):
            events.append(f"{name} starts")
            if hold:
                first_running.set()
                assert hold.wait(10)
            events.append(f"{name} ends")

    def alone() -> None:
        with machine_share.MachineShare().around(FakeItem("alone"), None):
            events.append("alone starts")
            assert sorted(os.sched_getaffinity(0)) == machine_share.ALL_CPUS
            time.sleep(0.2)
            events.append("alone ends")

    threads = [threading.Thread(target=ordinary, args=("first", let_first_end))]
    threads[0].start()
    assert first_running.wait(10)
    threads.append(threading.Thread(target=alone))
    threads[-1].start()
    time.sleep(0.3)  # the alone test is waiting now; a test that arrives after it must wait too
    threads.append(threading.Thread(target=ordinary, args=("second",)))
    threads[-1].start()
    time.sleep(0.3)
    assert events == ["first starts"]
    let_first_end.set()
    for thread in threads:
        thread.join(10)
    assert events == ["first starts", "first ends", "alone starts", "alone ends", "second starts", "second ends"]


@pytest.mark.all_cpus  # runs two workers of its own
@pytest.mark.timeout(300)
def test_two_workers_own_a_cpu_each_and_an_alone_test_has_the_machine(tmp_path):
    assert len(machine_share.ALL_CPUS) >= 2, "this test needs a machine with two CPUs, as the test command does"
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    for f in ("a", "b", "c"):
        (suite / f"test_{f}.py").write_text(SUITE + ORDINARY.format(f=f) + (ALONE.format(f=f) if f != "c" else ""))
    notes = tmp_path / "notes.jsonl"
    env = {k: v for k, v in os.environ.items() if k != machine_share.LOCKS_ENV}  # its own locks, not ours
    env.update(NOTES=str(notes), PYTHONPATH=os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder",
                           "-p", "no:cacheprovider", "-q", str(suite)], cwd=suite, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = [json.loads(line) for line in notes.read_text().splitlines()]
    alone = [r for r in ran if r["name"].startswith("alone")]
    ordinary = [r for r in ran if r["name"].startswith("ordinary")]
    assert len(alone) == 2 and len(ordinary) == 12
    # The alone tests: one worker, every CPU, and no other test running at any moment of theirs.
    assert len({r["worker"] for r in alone}) == 1
    assert all(r["cpus"] == machine_share.ALL_CPUS for r in alone)
    for a in alone:
        beside = [o["name"] for o in ordinary if o["start"] < a["end"] and a["start"] < o["end"]]
        assert not beside, f"{a['name']} ran beside {beside}"
    # The others: each worker on its own share of the CPUs, and both workers used.
    by_worker = {}
    for r in ordinary:
        by_worker.setdefault(r["worker"], set()).add(tuple(r["cpus"]))
    assert len(by_worker) == 2, by_worker
    shares = [next(iter(s)) for s in by_worker.values()]
    assert all(len(s) == 1 for s in by_worker.values()) and not set(shares[0]) & set(shares[1]), by_worker
