"""``mnist-bench run --executor slurm``: every planned run as one SLURM job, submitted through submitit.

The submitting host plans the sweep as the local harness does (the lock, the run
directory's rules, ``--resume``), then submits one job array per kind of allocation
(device kind and count) with submitit. Each job runs :func:`.slurm_job.run_on_node`:
the local harness's own ``run_one``, on its node, with the same worker request. This
module then watches SLURM (:mod:`.slurm_state`), relays the jobs' progress files, and
writes a record for every job that ended without one (``scancel``, a time limit, a
node failure, preemption), naming SLURM's state and reason. Ctrl-C or SIGTERM cancels
the sweep's jobs and records them as interrupted.

The run directory must be on a filesystem the nodes share (records, logs, requests
and submitit's job files all live in it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mnist_bench.bench.run import harness, record, run_dir, slurm_hosts, slurm_job, slurm_state
from mnist_bench.bench.run.record import now
from mnist_bench.common import records

# Beyond --timeout, what a job needs before its worker starts: the interpreter, the node's matmul peak probe.
STARTUP_S = 120.0
SUBMITIT_FOLDER = "slurm"  # in the run directory: submitit's job scripts, pickles and logs


class SlurmUnavailable(RuntimeError):
    """submitit is not installed or SLURM's commands are not reachable; the message says how to fix it."""


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    account: str | None = None
    mem: str | None = None  # as sbatch --mem takes it: 8G, 16000M
    sbatch: tuple[str, ...] = ()  # more sbatch options, e.g. --exclusive, --constraint=zen3
    poll_s: float = 2.0

    def describe(self) -> dict:
        return {"kind": "slurm", "partition": self.partition, "account": self.account, "mem": self.mem,
                "sbatch": list(self.sbatch)}


def sbatch_option(text: str) -> tuple[str, object]:
    """``--exclusive`` -> (exclusive, True); ``--constraint=zen3`` -> (constraint, zen3); ValueError otherwise."""
    if not text.startswith("--") or len(text) < 3 or text.startswith("--="):
        raise ValueError(f"--sbatch {text!r}: give a long sbatch option, e.g. --sbatch=--exclusive or "
                         "--sbatch=--constraint=zen3")
    key, sep, value = text[2:].partition("=")
    return key.replace("-", "_"), (value if sep else True)


def time_limit_min(config: harness.SweepConfig) -> int:
    """SLURM's time limit for one job: --timeout, plus the quiet-machine waits and startup, in whole minutes."""
    waits = 2 * config.quiet_wait_s if config.require_quiet else 0.0  # before the peak probe and before the run
    return max(1, math.ceil((config.timeout_s + waits + STARTUP_S) / 60))


def _executor(config: harness.SweepConfig, options: SlurmOptions, device: str, devices: int, hosts: int,
              array_size: int):
    try:
        import submitit
    except ImportError:
        raise SlurmUnavailable("--executor slurm needs submitit: pip install 'mnist-bench[slurm]'") from None
    executor = submitit.AutoExecutor(folder=config.run_dir / SUBMITIT_FOLDER / "%j", cluster="slurm")
    extra = dict(sbatch_option(text) for text in options.sbatch)
    if options.mem:
        extra["mem"] = options.mem
    if device == "gpu":
        extra["gpus_per_task"] = devices
    executor.update_parameters(
        name="mnist-bench", timeout_min=time_limit_min(config), nodes=hosts, tasks_per_node=1,  # a task per host
        cpus_per_task=config.threads, slurm_partition=options.partition, slurm_account=options.account,
        slurm_array_parallelism=array_size, slurm_additional_parameters=extra,
    )
    return executor


@dataclass
class Tracked:
    """A submitted run: its job, where the sweep shows it, how far its progress file was read."""
    spec: harness.RunSpec
    job_id: str
    place: tuple[int, int]
    submitted_at: str
    started: bool = False
    noted: str = ""
    offset: int = 0
    seen: dict = field(default_factory=dict)


def submit(specs: list, config: harness.SweepConfig, options: SlurmOptions, info: dict, total: int,
           tracked: list[Tracked]) -> None:
    """One job array per (device kind, device count, host count); a job per run, appended to ``tracked`` as it is
    submitted."""
    groups = {}
    for index, spec in enumerate(specs):
        groups.setdefault((spec.device, spec.devices, spec.hosts), []).append((index, spec))
    for (device, devices, hosts), members in groups.items():
        executor = _executor(config, options, device, devices, hosts, len(members))
        for _, spec in members:
            harness.pending_path(config.run_dir, spec).unlink(missing_ok=True)
        try:
            jobs = executor.map_array(slurm_job.run_on_node, [spec for _, spec in members],
                                      [config] * len(members), [info] * len(members))
        except Exception as exc:  # noqa: BLE001 -- submitit raises its own errors for sbatch's refusals
            raise SlurmUnavailable(f"sbatch refused the sweep's jobs: {exc}") from None
        stamp = now()
        tracked += [Tracked(spec, str(job.job_id), (index, total), stamp) for (index, spec), job in zip(members, jobs)]


def _relay(item: Tracked, config: harness.SweepConfig, display: harness.Display) -> None:
    """Pass the job's new progress lines (whole lines only) to the display."""
    path = slurm_job.progress_path(config.run_dir, item.spec.run_id)
    try:
        with open(path, "rb") as fh:
            fh.seek(item.offset)
            chunk = fh.read()
    except OSError:
        return
    body, _, _ = chunk.rpartition(b"\n")
    if not body:
        return
    item.offset += len(body) + 1
    for line in body.decode("utf-8", "replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "note":
            display.note(event.get("text", ""))
        else:
            display.update(item.spec, event)


def _show_state(item: Tracked, state: dict, display: harness.Display) -> None:
    if state["state"] in ("RUNNING", "COMPLETING") and not item.started:
        item.started = True
        display.start(item.spec, *item.place)
        display.note(f"{item.spec.run_id}: SLURM job {item.job_id} running on {state['node']}")
    elif state["state"] == "PENDING" and item.noted != state["reason"] and state["reason"] != "None":
        item.noted = state["reason"]
        display.note(f"{item.spec.run_id}: SLURM job {item.job_id} pending ({state['reason']})")


def _node_record(path: Path, job_id: str) -> dict | None:
    """The record this job's node wrote, or None (none yet, unreadable, or another job's)."""
    try:
        found = records.read(path)
    except records.RecordError:
        return None
    return found if (found.get("executor") or {}).get("job_id") == job_id else None


def _left_a_trace(config: harness.SweepConfig, spec: harness.RunSpec) -> bool:
    """Whether the job wrote anything of its own into the run directory (a node that cannot see it writes nothing)."""
    return any(path.exists() for path in (config.run_dir / f"{spec.run_id}.log",
                                          slurm_job.progress_path(config.run_dir, spec.run_id)))


def settle(item: Tracked, config: harness.SweepConfig, display: harness.Display, info: dict,
           cancelled: bool = False) -> dict:
    """The record of a job that left the queue: its node's, or one naming how SLURM ended it."""
    spec, path = item.spec, harness.record_path(config.run_dir, item.spec)
    _relay(item, config, display)
    ending = slurm_state.ended(item.job_id)
    written = _node_record(path, item.job_id)
    if written is not None and (written["status"] == "ok" or ending["state"] == "COMPLETED"):
        display.finish(spec, written)
        return written
    harness.pending_path(config.run_dir, spec).unlink(missing_ok=True)
    node = ending["node"] or (written or {}).get("executor", {}).get("node")
    executor = {"kind": "slurm", "job_id": item.job_id, "node": node, "state": ending["state"],
                "reason": ending["reason"]}
    said = f"SLURM job {item.job_id} on {node or 'no node'} ended {ending['state']} (reason: {ending['reason']}, " \
           f"exit code {ending['exit_code']})"
    if cancelled:
        status, kind, message = "interrupted", "KeyboardInterrupt", \
            f"the sweep was interrupted (Ctrl-C or SIGTERM) and cancelled its job; {said}; --resume resubmits it"
    elif ending["state"] == "TIMEOUT":
        status, kind, message = "timeout", "SlurmTimeout", \
            f"{said}: over its time limit of {time_limit_min(config)} min; --resume resubmits it"
    elif ending["state"] == "COMPLETED" and written is None:
        status, kind = "failed", "NoRecordFromNode"
        message = (f"{said} but no record of it reached {config.run_dir}: is the run directory on a filesystem "
                   f"the nodes share? Its job's own log is under {config.run_dir / SUBMITIT_FOLDER / item.job_id}")
    else:
        status, kind = "failed", "Slurm" + ending["state"].title().replace("_", "")
        message = f"{said} before recording its run; --resume resubmits it"
    if spec.hosts > 1:  # host 0 did not finish: what the other hosts recorded may say why
        others = slurm_hosts.other_hosts(config.run_dir, spec.run_id, spec.hosts, item.job_id)
        message += f"; the other hosts of the run: {others}"
    log = config.run_dir / f"{spec.run_id}.log"
    if written is None and not cancelled and not _left_a_trace(config, spec):
        message += (f". Nothing of it reached {config.run_dir} (no log, no progress): the run directory must be on a "
                    f"filesystem the nodes share, and so must this Python; SLURM's own output for the job, if any, "
                    f"is under {config.run_dir / SUBMITIT_FOLDER}")
    machine_info = (written or {}).get("machine") or {"hostname": node}
    started_at = (written or {}).get("started_at") or item.submitted_at
    error = {"type": kind, "message": message, "tail": harness._tail(log)}
    return harness._conclude(path, spec, config, display, info, machine_info, executor, status, error, started_at)


def watch(tracked: list[Tracked], config: harness.SweepConfig, options: SlurmOptions, display: harness.Display,
          info: dict, after_run: Callable[[], None] | None = None) -> dict[str, dict]:
    """Follow the jobs until each has left the queue; their records by run id. Ctrl-C cancels the rest.

    ``after_run`` is called once each job's run is recorded, as :func:`.harness.run_sweep` calls it.
    """
    results: dict[str, dict] = {}
    waiting = {item.job_id: item for item in tracked}
    try:
        while waiting:
            states = slurm_state.queued(list(waiting))
            for job_id, item in list(waiting.items()):
                if job_id in states:
                    _show_state(item, states[job_id], display)
                    _relay(item, config, display)
                else:
                    results[item.spec.run_id] = settle(item, config, display, info)
                    del waiting[job_id]
                    if after_run is not None:
                        after_run()
            if waiting:
                time.sleep(options.poll_s)
    except KeyboardInterrupt:
        cancel(list(waiting.values()), config, display, info)
        raise
    return results


def cancel(tracked: list[Tracked], config: harness.SweepConfig, display: harness.Display, info: dict) -> None:
    """The sweep was interrupted: ``scancel`` its jobs, wait (a bounded time) for them to go, record them."""
    job_ids = [item.job_id for item in tracked]
    slurm_state.cancel(job_ids)
    deadline = time.monotonic() + 120
    while job_ids and slurm_state.queued(job_ids) and time.monotonic() < deadline:
        time.sleep(1)
    for item in tracked:
        settle(item, config, display, info, cancelled=True)


def run_sweep(config: harness.SweepConfig, options: SlurmOptions, display: harness.Display,
              after_run: Callable[[], None] | None = None) -> list[dict]:
    """:func:`.harness.run_sweep` with every run a SLURM job; the same records, plus each one's ``executor``."""
    info = record.mnist_bench_info()
    config = dataclasses.replace(config, run_dir=config.run_dir.resolve())  # the nodes' working directory may differ
    results: dict[str, dict] = {}
    with harness.locked(config.run_dir):
        try:
            specs, manifest = run_dir.prepare(config, info, config.action, config.command, now())
            manifest["sessions"][-1]["executor"] = options.describe()
            manifest.setdefault("matmul_peak", None)  # measured on each node: in each record's "peak"
            harness._write(config.run_dir / run_dir.MANIFEST, manifest)
            display.plan(specs)  # its time-left estimate adds the runs up, as if they ran one after another
            todo = []
            for spec in specs:
                kept = harness.existing_ok(harness.record_path(config.run_dir, spec)) \
                    if config.action in ("resume", "extend") else None
                if kept is not None:
                    display.finish(spec, kept, kept=True)
                    results[spec.run_id] = kept
                else:
                    todo.append(spec)
            tracked: list[Tracked] = []
            try:
                submit(todo, config, options, info, len(specs), tracked)
            except KeyboardInterrupt:  # between two arrays: the first one's jobs are already queued
                cancel(tracked, config, display, info)
                raise
            for item in tracked:
                display.note(f"{item.spec.run_id}: submitted as SLURM job {item.job_id}")
            results.update(watch(tracked, config, options, display, info, after_run))
        finally:
            display.close()
    return [results[spec.run_id] for spec in specs if spec.run_id in results]
