"""A real SLURM cluster for the tests: scripts/slurm/start.sh, stopped by stop.sh.

Two nodes, both this machine: the default partition holds the first, ``hosts`` (:data:`HOSTS_PARTITION`)
both, for multi-node jobs.

Started once per test session by the ``slurm_cluster`` fixture (conftest.py). It never skips: a
cluster that cannot be started fails the tests that need it, saying why and how to fix it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "scripts" / "slurm"
HOSTS_PARTITION = "hosts"  # both nodes (start.sh)


class ClusterUnavailable(RuntimeError):
    """The test cluster could not be installed or started; the message says why."""


@dataclass(frozen=True)
class Cluster:
    directory: Path  # slurm.conf, the daemons' logs, their PIDs

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, squeue, submitit) needs to reach this cluster."""
        return {"SLURM_CONF": str(self.directory / "slurm.conf")}

    def pids(self) -> list[tuple[str, int]]:
        """(daemon, PID) of every daemon start.sh started, as it recorded them."""
        lines = (self.directory / "pids").read_text().split("\n")
        return [(name, int(pid)) for name, pid in (line.split() for line in lines if line.strip())]

    @property
    def nodes(self) -> list[str]:
        """The nodes of the ``hosts`` partition, in SLURM's order (host 0's first in a job on both)."""
        listed = self.run("sinfo", "-h", "-N", "-p", HOSTS_PARTITION, "-o", "%N").stdout.split()
        return list(dict.fromkeys(listed))

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(list(argv), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout, check=False)


def _script(name: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def start(directory: Path) -> Cluster:
    """Install SLURM if missing and start the cluster in ``directory``; :class:`ClusterUnavailable` if it cannot."""
    done = _script("install.sh", timeout=900)
    if done.returncode != 0:
        raise ClusterUnavailable(f"installing SLURM failed (scripts/slurm/install.sh):\n{done.stderr}")
    done = _script("start.sh", str(directory), timeout=120)
    if done.returncode != 0:
        raise ClusterUnavailable(f"the test SLURM cluster did not start (scripts/slurm/start.sh {directory}):\n"
                                 f"{done.stderr}")
    return Cluster(directory)


def stop(cluster: Cluster) -> str:
    """Stop the cluster's daemons by their recorded PIDs; stop.sh's error output ('' when clean)."""
    done = _script("stop.sh", str(cluster.directory), timeout=120)
    return done.stderr
