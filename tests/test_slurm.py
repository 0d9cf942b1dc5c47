"""The SLURM executor against a real one-node cluster (tests/slurm_cluster.py; never mocked, never skipped)."""

from __future__ import annotations

import os
import time

import slurm_cluster as slurm


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_cluster_runs_batch_jobs_and_steps(slurm_cluster, tmp_path):
    out = tmp_path / "hostname.out"
    submitted = slurm_cluster.run("sbatch", "--parsable", "--wait", "-o", str(out), "--wrap", "hostname", timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    assert out.read_text().strip() == os.uname().nodename.split(".")[0]
    step = slurm_cluster.run("srun", "-N1", "-n1", "printenv", "SLURM_JOB_ID", timeout=60)
    assert step.returncode == 0, step.stderr
    assert int(step.stdout.strip()) > int(submitted.stdout.strip().split(";")[0])


def test_stop_ends_exactly_the_daemons_it_started(tmp_path):
    cluster = slurm.start(tmp_path / "cluster")
    pids = cluster.pids()
    assert sorted(pids) == ["munged", "slurmctld", "slurmd"]
    for name, pid in pids.items():
        assert open(f"/proc/{pid}/comm").read().strip() == name  # the daemon itself, not a wrapper
    assert slurm.stop(cluster) == ""
    assert all(_wait_gone(pid) for pid in pids.values())
    assert not (cluster.directory / "pids").exists()
