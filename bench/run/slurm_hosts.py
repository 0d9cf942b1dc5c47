"""A multi-host run as one SLURM job: each host's rank and the coordinator, read from SLURM itself.

``mnist-bench run --executor slurm --hosts H`` submits each such run as one job of H nodes
with one task per node (:mod:`.slurm_executor`). Every task runs the run's worker request,
with its place taken from the job, as ``torchrun`` and ``jax.distributed.initialize`` take
it under SLURM, so the user passes no address:

* the host rank is the task's ``SLURM_PROCID``; with one task per node in node-list order
  (checked), task 0 runs on the job's first node;
* the coordinator is the address SLURM itself reaches that node at (its ``NodeAddr`` in
  ``scontrol show node``, else its name), at a port every task derives from the job id, so
  the tasks agree on it without talking to each other;
* TensorFlow's ``TF_CONFIG`` lists every node's address with the port after the coordinator's, one
  further for each further host on the same address, so two tasks on one machine (the test
  cluster) never share a port.

Host 0 writes the run's record where a single-host run writes it. Host R > 0 writes its own
record too, as it would on its own machine, in ``host-R/`` of the run directory, which no
reader takes for a result: the model is replicated, so every host's training results are the same.
Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mnist_bench.bench.run import slurm_state

# Each job gets PORTS_PER_JOB ports from 20000 + PORTS_PER_JOB x (job id mod JOBS): the coordinator's, then
# TensorFlow's workers' (one more for each further worker on the same address), so jobs with neighbouring ids
# never share one.
PORT_BASE, PORTS_PER_JOB, JOBS = 20000, 4, 5000


class PlacementError(RuntimeError):
    """The job's tasks and nodes do not make the run's hosts; the message says what SLURM gave and what to change."""


@dataclass(frozen=True)
class Place:
    """Where this task sits in its multi-host run."""

    host_rank: int
    nodes: tuple[str, ...]  # the job's nodes, host 0 first
    addresses: tuple[str, ...]  # how each node is reached, in the same order
    port: int

    @property
    def coordinator(self) -> str:
        return f"{self.addresses[0]}:{self.port}"

    def tf_config(self) -> str:
        """TensorFlow's cluster: every host a worker, at port + 1, or further on where hosts share an address."""
        workers = [f"{address}:{self.port + 1 + self.addresses[:rank].count(address)}"
                   for rank, address in enumerate(self.addresses)]
        return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": self.host_rank}})


def expand(node_list: str) -> list[str]:
    """SLURM's compressed node list (``n[01-03],gpu7``) as node names, in SLURM's order."""
    done = slurm_state.command(["scontrol", "show", "hostnames", node_list])
    if done.returncode != 0:
        raise PlacementError(f"scontrol show hostnames {node_list} failed: {done.stderr.strip()}")
    return done.stdout.split()


def node_address(node: str) -> str:
    """The address SLURM reaches ``node`` at (``NodeAddr``); its name when SLURM gives none."""
    fields = slurm_state.show("node", node)
    if fields is None:
        raise PlacementError(f"scontrol show node {node}: SLURM does not know the node")
    return fields.get("NodeAddr") or node


def port_for(job_id: str) -> int:
    """The coordinator's port for a job: from its id, so every task computes the same one."""
    return PORT_BASE + PORTS_PER_JOB * (int(job_id) % JOBS)


def place(hosts: int, env: dict[str, str] | None = None) -> Place:
    """This task's :class:`Place` in a run of ``hosts`` hosts, from the job's environment."""
    env = os.environ if env is None else env
    missing = [name for name in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_NODELIST", "SLURM_JOB_ID")
               if name not in env]
    if missing:
        raise PlacementError(f"a multi-host run must run as a SLURM job step (srun), but {', '.join(missing)} "
                             "is not set")
    rank, tasks, nodes = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), expand(env["SLURM_JOB_NODELIST"])
    if tasks != hosts or len(nodes) != hosts:
        raise PlacementError(f"the run needs --hosts {hosts}: {hosts} nodes with one task each, but SLURM gave "
                             f"{tasks} task(s) on {len(nodes)} node(s) ({', '.join(nodes)}); leave --ntasks, "
                             "--nodes and --ntasks-per-node out of --sbatch")
    here = env.get("SLURMD_NODENAME")
    if here is not None and here != nodes[rank]:
        raise PlacementError(f"task {rank} runs on {here}, not on node {rank} of the job ({nodes[rank]}): host 0 "
                             "must be the first node, so leave --distribution out of --sbatch")
    return Place(rank, tuple(nodes), tuple(node_address(node) for node in nodes), port_for(env["SLURM_JOB_ID"]))


def host_dir(run_dir: Path, host_rank: int) -> Path:
    """Where host ``host_rank`` writes its request, log and record: host 0 in the run directory itself."""
    return Path(run_dir) if host_rank == 0 else Path(run_dir) / f"host-{host_rank}"


def config_for(config, host_rank: int, coordinator: str | None = None):
    """``config`` (a ``harness.SweepConfig``) as host ``host_rank`` runs it: its rank, the coordinator, its directory."""
    directory = host_dir(config.run_dir, host_rank)
    directory.mkdir(exist_ok=True)
    return dataclasses.replace(config, host_rank=host_rank, coordinator=coordinator, run_dir=directory)


def other_hosts(run_dir: Path, run_id: str, hosts: int, job_id: str) -> str:
    """What hosts 1 to ``hosts - 1`` recorded for ``run_id`` in job ``job_id``, in a phrase (for a run host 0 did
    not finish)."""
    from mnist_bench.common import records

    said = []
    for rank in range(1, hosts):
        try:
            found = records.read(host_dir(run_dir, rank) / f"{run_id}{records.RECORD_SUFFIX}")
        except records.RecordError:
            found = None
        if found is None or (found.get("executor") or {}).get("job_id") != job_id:
            said.append(f"host {rank}: no record")
            continue
        error = (found.get("error") or {}).get("message", "")
        said.append(f"host {rank}: {found['status']}" + (f" ({error.splitlines()[0][:200]})" if error else ""))
    return "; ".join(said)
