"""A run measures its own machine: a CPU-bound process beside it shows up in its record and its report.

The hog is pinned to the very CPU the run uses, so the two must share it; the
tests could not pass if the run stopped reading /proc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_bench.common import contention

REPO_ROOT = Path(__file__).resolve().parent.parent
CPU = contention.pinned_cpus(1)[0]


@pytest.fixture
def hog():
    proc = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{CPU}}})\nwhile True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        yield proc
    finally:
        proc.kill()
        proc.wait()


def run_cli(tmp_path: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = ["run", "--backends", "torch", "--device", "cpu", "--preset", "quick", "--set", "train_limit=3200",
            "--set", "test_limit=200", "--set", "steps_per_epoch=40", "--chunk-steps", "5", "--epochs", "1",
            "--threads", "1", "--no-peak-probe", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), *extra]
    return subprocess.run([sys.executable, "-m", "mnist_bench.bench.cli", *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


def record(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "run" / "torch-eager-cpu-s0.run.json").read_text(encoding="utf-8"))


def test_monitor_sees_a_process_on_its_cpu(hog):
    # The run's own tree is a sleeping process: the hog is pytest's child, and the run must not count it as its own.
    run = subprocess.Popen(["sleep", "30"])
    try:
        monitor = contention.Monitor([CPU], root=run.pid).start()
        time.sleep(1.0)
        interval = monitor.sample()
    finally:
        run.kill()
        run.wait()
    assert interval is not None and interval.other > 0.8, interval  # the hog has the CPU to itself
    assert interval.own < 0.05
    summary = monitor.summary()
    assert summary["contended"] is True and summary["other_share"] > 0.8
    top = contention.busiest(exclude=[os.getpid()])
    assert any(p["pid"] == hog.pid and p["cpu_share"] > 0.4 for p in top), top


def test_a_run_beside_a_cpu_hog_is_recorded_and_reported_as_contended(tmp_path, shared_data_dir, hog):
    done = run_cli(tmp_path, shared_data_dir, "--quiet-wait", "1", "--report")
    assert done.returncode == 0, done.stderr[-3000:]
    block = record(tmp_path)["contention"]
    # Sharing one CPU with a spinning process leaves the run about half of it.
    assert block["contended"] is True and block["other_share"] > 0.25, block
    assert block["quiet_wait"]["quiet"] is False and block["quiet_wait"]["waited_s"] >= 1
    assert "waiting up to 1 s for a quiet machine" in done.stdout, done.stdout
    assert f"pid {hog.pid} " in done.stdout  # it said what it waited on
    assert "running it marked contended" in done.stdout
    headline = (tmp_path / "run" / "report.md").read_text(encoding="utf-8").split("\n## ")[0]
    assert "⚠ 1 of 1 finished runs were measured on a busy machine" in headline


@pytest.mark.quiet  # asserts its CPUs quiet
def test_a_run_on_a_quiet_machine_is_not_flagged(tmp_path, shared_data_dir):
    done = run_cli(tmp_path, shared_data_dir, "--quiet-wait", "30")
    assert done.returncode == 0, done.stderr[-3000:]
    block = record(tmp_path)["contention"]
    assert block["contended"] is False and block["other_share"] < contention.CONTENDED_SHARE, block
    assert block["own_share"] > 0.5 and block["intervals"] >= 8
    assert block["quiet_wait"]["quiet"] is True


def test_if_busy_stop_ends_the_sweep_with_a_record(tmp_path, shared_data_dir, hog):
    done = run_cli(tmp_path, shared_data_dir, "--quiet-wait", "1", "--if-busy", "stop")
    assert done.returncode == 1
    assert "stopped: the machine is busy" in done.stderr and "--resume" in done.stderr
    stopped = record(tmp_path)
    assert stopped["status"] == "interrupted" and stopped["error"]["type"] == "MachineBusy"
    assert stopped["contention"]["quiet_wait"]["quiet"] is False


def test_shares_stay_within_one_when_counters_tick_apart():
    # A process read a moment after its CPUs can show more ticks than they did: 101 own of 100 total.
    a = contention.Reading(0.0, contention.CpuTicks(busy=0, steal=0, total=0), own=0, harness=0)
    b = contention.Reading(1.0, contention.CpuTicks(busy=100, steal=0, total=100), own=101, harness=0)
    interval = contention._interval(a, b)
    assert interval.own == 1.0 and interval.other == 0.0
