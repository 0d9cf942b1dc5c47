"""Load: a sweep of 30 short runs completes, with 30 valid ``ok`` records and nothing left behind.

The harness runs in-process here, so leaks it would accumulate over a long
sweep (open pipes and files, child processes) show up in this process.
"""

import json
import os
from pathlib import Path

import pytest

from mnist_bench.bench import cli
from mnist_bench.common import records

RUNS = 30


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 4 (after the parenthesised command name) is the parent pid.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.timeout(900)
def test_thirty_run_sweep(tmp_path, shared_data_dir, capsys):
    out = tmp_path / "run"
    # The NumPy implementation in float32: no framework to import, so 30 runs take half the time torch's did,
    # and what is measured here (the harness) is the same.
    argv = ["run", "--backends", "numpy", "--modes", "float32", "--device", "cpu", "--preset", "quick",
            "--no-require-quiet",
            "--set", "train_limit=128", "--set", "test_limit=100", "--set", "steps_per_epoch=2",
            "--epochs", "1", "--seeds", str(RUNS), "--threads", "1", "--chunk-steps", "1",
            "--data-dir", str(shared_data_dir), "--out", str(out), "--quiet"]
    fds_before = open_fds()
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err[-3000:]
    assert captured.out == ""

    paths = records.record_paths(out)
    assert len(paths) == RUNS
    runs = [records.read(path) for path in paths]  # each validated against the schema
    assert all(run["status"] == "ok" and run["error"] is None for run in runs), [
        (run["run_id"], run["status"], run.get("error")) for run in runs if run["status"] != "ok"]
    assert sorted(run["seed"] for run in runs) == list(range(RUNS))
    assert len({run["run_id"] for run in runs}) == RUNS
    for run in runs:
        assert [epoch["steps"] for epoch in run["epochs"]] == [2]
        assert run["data"]["train_size"] == 128 and run["data"]["test_size"] == 100
        assert run["final"]["test"]["accuracy"] is not None
        # Read back from the implementation, not written by the worker: full float32 on the CPU.
        assert run["numerics"] == {"dtype": "float32", "compute_dtype": "float32", "tf32": False,
                                   "matmul_precision": "highest"}
    # Seeds matter: not every run may have produced the same first-epoch loss.
    assert len({run["epochs"][0]["train_loss"] for run in runs}) > 1

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["runs"] == [f"numpy-float32-cpu-s{seed}" for seed in range(RUNS)]
    # Nothing left behind: no temp files, no worker processes, no open pipes, the lock released.
    assert not list(out.glob(".*.tmp")) and not list(out.glob("*.tmp"))
    assert sorted(out.glob("*.log")) and len(list(out.glob("*.log"))) == RUNS
    assert children_of(os.getpid()) == []
    assert open_fds() - fds_before <= 2
    assert (out / ".lock").read_text() == ""
