"""One planned run as a SLURM job, on its node: the local harness's :func:`~.harness.run_one`, unchanged.

:mod:`.slurm_executor` submits :func:`run_on_node` through submitit; on the node it
measures the node's matmul peak (its CPUs, not the submitting host's), waits for a
quiet machine if asked, and runs the same worker request the local harness runs, in
its own process with the same pinning, timeout and records. The record gains an
``executor`` block naming the job and the node. Progress events go to
``<run id>.progress.jsonl`` in the run directory (which the nodes share), where the
submitting harness reads them.

A multi-host run (``--hosts H``) is one job of H nodes, one task per node; each task
runs this with its host rank and the coordinator read from SLURM (:mod:`.slurm_hosts`).

SIGTERM (``scancel``, a time limit, preemption) stops the run as Ctrl-C stops a local
one: the worker is killed and the run recorded as interrupted; the submitting
harness then names SLURM's reason in that record.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

PROGRESS_SUFFIX = ".progress.jsonl"


def progress_path(run_dir: Path, run_id: str) -> Path:
    return Path(run_dir) / f"{run_id}{PROGRESS_SUFFIX}"


def job_fields(nodes: tuple[str, ...] = ()) -> dict:
    """This job as the record names it: its id as ``squeue`` and submitit show it, its node, and for a
    multi-host run every node of the job (host 0's first)."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array_job}_{task}" if array_job and task else os.environ.get("SLURM_JOB_ID", "")
    fields = {"kind": "slurm", "job_id": job_id, "node": os.environ.get("SLURMD_NODENAME") or os.uname().nodename}
    return {**fields, "nodes": list(nodes)} if nodes else fields


class ProgressFile:
    """A harness display that appends each event as a JSON line to a file the submitting host reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.unlink(missing_ok=True)

    def _write(self, event: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")

    def plan(self, specs) -> None:
        pass

    def note(self, text: str) -> None:
        self._write({"event": "note", "text": text})

    def start(self, spec, index: int, total: int) -> None:
        pass

    def update(self, spec, event: dict) -> None:
        self._write(event)

    def finish(self, spec, record: dict, kept: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


def _placed(spec, config, info: dict):
    """(``config`` as this host of a multi-host run runs it, the job's nodes), or (None, ()) when SLURM's layout
    cannot make the run's hosts: this host then records that as its run's failure, in its own directory (host 0's
    is the run directory), and returns without an error, so SLURM's end state does not replace that record."""
    from mnist_bench.bench.run import harness, slurm_hosts
    from mnist_bench.bench.run.record import now
    from mnist_bench.common import machine

    try:
        where = slurm_hosts.place(spec.hosts)
    except slurm_hosts.PlacementError as exc:
        mine = slurm_hosts.config_for(config, int(os.environ.get("SLURM_PROCID", "0")))
        harness._conclude(harness.record_path(mine.run_dir, spec), spec, mine,
                          ProgressFile(progress_path(mine.run_dir, spec.run_id)), info, machine.describe(),
                          job_fields(), "failed", {"type": "SlurmPlacement", "message": str(exc)}, now())
        return None, ()
    os.environ["TF_CONFIG"] = where.tf_config()  # for TensorFlow's MultiWorkerMirroredStrategy; others ignore it
    return slurm_hosts.config_for(config, where.host_rank, where.coordinator), where.nodes


def run_on_node(spec, config, info: dict) -> str:
    """Run ``spec`` of ``config`` (a ``harness.SweepConfig``) here; its record's status."""
    from mnist_bench.bench.run import harness, interrupts
    from mnist_bench.common import machine

    nodes = ()
    if spec.hosts > 1:
        config, nodes = _placed(spec, config, info)
        if config is None:
            return "failed"
    display = ProgressFile(progress_path(config.run_dir, spec.run_id))
    # submitit asks SLURM for SIGUSR2 shortly before the time limit and then requeues or fails the job; a benchmark
    # run is not resumable, so the job runs on until SLURM ends it, and the harness records SLURM's own end state.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        with interrupts.stop_once():  # replaces submitit's handler, which ignores SIGTERM
            matmul_peak = harness.measure_peak(config)
            written = harness.run_one(spec, config, display, info, machine.describe(), matmul_peak,
                                      executor=job_fields(nodes))
    except KeyboardInterrupt:
        return "interrupted"
    return written["status"]
