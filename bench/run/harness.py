"""The harness: runs a sweep of (backend, mode, device, seed) one worker process at a time.

Every run gets a fresh interpreter (:mod:`mnist_bench.bench.run.worker`), a per-run timeout and
its own log. Whatever happens to a worker -- an exception, a crash, SIGKILL, a
hang, a diverging loss, Ctrl-C -- the run ends with a schema-valid record in the
run directory, and the runs before and after it are unaffected. A lock keeps
two harnesses out of one run directory; ``resume`` re-runs only the runs whose
record is missing or not ``ok``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import signal
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Protocol

from mnist_bench.bench.run import process, record
from mnist_bench.bench.run.record import now
from mnist_bench.bench.run.worker import PROGRESS_PREFIX
from mnist_bench.common import contention, machine, records
from mnist_bench.common.recipe import Recipe
LOG_TAIL_CHARS = 4000


class RunDirBusy(RuntimeError):
    """Another harness holds the run directory's lock."""


class MachineBusy(RuntimeError):
    """The machine did not become quiet in time and the sweep was told to stop (``--if-busy stop``)."""


@dataclass(frozen=True)
class RunSpec:
    backend: str
    mode: str
    device: str
    seed: int
    devices: int = 1  # per host; data-parallel when devices * hosts > 1
    hosts: int = 1

    @property
    def run_id(self) -> str:
        world = self.devices * self.hosts
        return f"{self.backend}-{self.mode}-{self.device}-{f'd{world}-' if world > 1 else ''}s{self.seed}"


@dataclass(frozen=True)
class SweepConfig:
    specs: tuple[RunSpec, ...]
    recipe: Recipe
    run_dir: Path
    threads: int
    timeout_s: float
    command: str
    data_dir: str | None = None
    chunk_steps: int = 20
    target_accuracy: float = 0.99
    resume: bool = False
    allow_known_broken: bool = False
    peak_probe: bool = True
    host_rank: int = 0  # with hosts > 1: this host's place, and where host 0 listens
    coordinator: str | None = None
    require_quiet: bool = True  # wait for a quiet machine before each run
    quiet_wait_s: float = 120.0
    if_busy: str = "proceed"  # or "stop": what to do when it is still busy after quiet_wait_s


class Display(Protocol):
    def note(self, text: str) -> None: ...
    def start(self, spec: RunSpec, index: int, total: int) -> None: ...
    def update(self, spec: RunSpec, event: dict) -> None: ...
    def finish(self, spec: RunSpec, record: dict, kept: bool = False) -> None: ...
    def close(self) -> None: ...


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on ``run_dir`` for the sweep's duration."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise RunDirBusy(
                f"run directory {run_dir} is in use by another mnist-bench run (pid {holder}); "
                "wait for it to finish or choose another directory with --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()


def record_path(run_dir: Path, spec: RunSpec) -> Path:
    return run_dir / f"{spec.run_id}{records.RECORD_SUFFIX}"


def existing_ok(path: Path) -> dict | None:
    try:
        found = records.read(path)
    except records.RecordError:
        return None
    return found if found["status"] == "ok" else None


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - LOG_TAIL_CHARS))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"worker killed by {signal.Signals(-code).name}"
    return f"worker exited with code {code} without writing its record"


def _pump(proc: subprocess.Popen, log, spec: RunSpec, display: Display) -> None:
    """Forward progress lines to the display and everything else to the log.

    It must keep reading to the end: if it stopped, the worker would block on a full pipe.
    """
    for line in proc.stdout:
        if line.startswith(PROGRESS_PREFIX):
            try:
                display.update(spec, json.loads(line[len(PROGRESS_PREFIX):]))
            except Exception as exc:  # noqa: BLE001 -- a bad line must not stop the pump
                log.write(f"mnist-bench harness: unusable progress line ({type(exc).__name__}: {exc}): {line}")
                log.flush()
        else:
            log.write(line)
            log.flush()


def measure_peak(config: SweepConfig) -> dict | None:
    """NumPy's fp32 matmul peak with the sweep's threads and pinning, once per sweep (None if turned off).

    A probe that fails is recorded as ``{"error": ...}``; it never stops the sweep.
    """
    if not config.peak_probe:
        return None
    from mnist_bench.bench.run import peak_probe

    waited = None
    if config.require_quiet:  # a busy machine lowers the peak, and so inflates every run's fraction of it
        waited = contention.wait_for_quiet(contention.pinned_cpus(config.threads), config.quiet_wait_s)
    try:
        return {**peak_probe.measure(config.threads), "quiet_wait": waited}
    except peak_probe.PeakProbeError as exc:
        return {"gflops": None, "error": str(exc), "quiet_wait": waited}


def wait_for_quiet(spec: RunSpec, config: SweepConfig, display: Display) -> dict | None:
    """With ``require_quiet``: wait a bounded time for the run's CPUs to be quiet, saying on what."""
    if not config.require_quiet:
        return None
    seen = contention.wait_for_quiet(contention.pinned_cpus(config.threads), config.quiet_wait_s,
                                     say=lambda text: display.note(f"{spec.run_id}: {text}"))
    if not seen["quiet"]:
        then = "stopping the sweep (--if-busy stop)" if config.if_busy == "stop" else "running it marked contended"
        display.note(f"{spec.run_id}: still busy after {seen['waited_s']:g} s (other processes used "
                     f"{seen['other_share']:.0%} of its CPUs); {then}")
    return seen


def _conclude(path: Path, spec: RunSpec, config: SweepConfig, display: Display, info: dict, machine_info: dict,
              status: str, error: dict, started_at: str, quiet_wait: dict | None = None) -> dict:
    """Write the harness's record for a run the worker could not record, and show it."""
    written = record.for_harness(spec, config, status, error, started_at, info, machine_info, quiet_wait)
    records.write_atomic(path, written)
    display.finish(spec, written)
    return written


def _request(spec: RunSpec, config: SweepConfig, path: Path, info: dict, matmul_peak: dict | None,
             quiet_wait: dict | None) -> dict:
    """What the worker is told: the run, the recipe, where its record goes."""
    return {
        **asdict(spec),
        "run_id": spec.run_id,
        "recipe": config.recipe.to_dict(),
        "threads": config.threads,
        "data_dir": config.data_dir,
        "chunk_steps": config.chunk_steps,
        "target_accuracy": config.target_accuracy,
        "allow_known_broken": config.allow_known_broken,
        "matmul_peak": matmul_peak,
        "topology": {"devices": spec.devices, "hosts": spec.hosts, "host_rank": config.host_rank,
                     "coordinator": config.coordinator},
        "record_path": str(path),
        "command": config.command,
        "mnist_bench": info,
        "quiet_wait": quiet_wait,
        "harness_pid": os.getpid(),
    }


def _run_worker(spec: RunSpec, config: SweepConfig, request: dict, log_path: Path, display: Display) -> int | None:
    """Run the worker on ``request``; its exit code, or None when it timed out (its process group is killed).

    Interrupted (Ctrl-C, SIGTERM), the worker's group is killed and KeyboardInterrupt goes on.
    """
    request_path = config.run_dir / f"{spec.run_id}.request.json"
    records.write_atomic(request_path, request)
    with open(log_path, "w", encoding="utf-8") as log:
        proc = process.start(
            process.python("-m", "mnist_bench.bench.run.worker", str(request_path)),
            env=process.child_env({"PYTHONUNBUFFERED": "1"}), stdout=subprocess.PIPE, stderr=log, text=True,
            encoding="utf-8", errors="replace",  # native code may print anything; the pump must not die on it
        )
        pump = threading.Thread(target=_pump, args=(proc, log, spec, display), daemon=True)
        pump.start()
        try:
            return process.wait(proc, config.timeout_s)
        finally:
            pump.join(timeout=5)


def _written_record(path: Path) -> tuple[dict | None, str | None]:
    """(the worker's record, None), or (None, why it is unusable), or (None, None) when there is none."""
    if not path.exists():
        return None, None
    try:
        return records.read(path), None
    except records.RecordError as exc:
        return None, str(exc)


def run_one(spec: RunSpec, config: SweepConfig, display: Display, info: dict, machine_info: dict,
            matmul_peak: dict | None = None) -> dict:
    path = record_path(config.run_dir, spec)
    path.unlink(missing_ok=True)  # a record present after the run is this run's
    conclude = functools.partial(_conclude, path, spec, config, display, info, machine_info)
    try:
        quiet_wait = wait_for_quiet(spec, config, display)
    except KeyboardInterrupt:
        conclude("interrupted", {"type": "KeyboardInterrupt",
                                 "message": "interrupted while waiting for a quiet machine; --resume runs it"}, now())
        raise
    started_at = now()
    if quiet_wait is not None and not quiet_wait["quiet"] and config.if_busy == "stop":
        written = conclude("interrupted", {
            "type": "MachineBusy",
            "message": f"not started: other processes used {quiet_wait['other_share']:.0%} of its CPUs after "
                       f"waiting {quiet_wait['waited_s']:g} s (--if-busy stop); --resume runs it later"},
            started_at, quiet_wait)
        raise MachineBusy(written["error"]["message"])
    log_path = config.run_dir / f"{spec.run_id}.log"
    try:
        code = _run_worker(spec, config, _request(spec, config, path, info, matmul_peak, quiet_wait), log_path, display)
    except KeyboardInterrupt:
        conclude("interrupted", {"type": "KeyboardInterrupt", "tail": _tail(log_path),
                                 "message": "interrupted by the user (Ctrl-C); --resume re-runs it"},
                 started_at, quiet_wait)
        raise
    if code is None:
        status, error = "timeout", {"type": "Timeout",
                                    "message": f"run exceeded its timeout of {config.timeout_s:g} s and was killed"}
    else:
        written, invalid = _written_record(path)
        if written is not None:
            display.finish(spec, written)
            return written
        message = _describe_exit(code) if invalid is None else (
            f"worker exited with code {code} and left an invalid record: {invalid}")
        status, error = "failed", {"type": "WorkerDied" if invalid is None else "InvalidRecord",
                                   "message": message, "exit_code": code}
    return conclude(status, {**error, "tail": _tail(log_path)}, started_at, quiet_wait)


def run_sweep(config: SweepConfig, display: Display) -> list[dict]:
    """Run every spec (skipping finished ones with ``resume``); return all records."""
    info = record.mnist_bench_info()
    machine_info = machine.describe()
    results: list[dict] = []
    with locked(config.run_dir):
        try:
            matmul_peak = measure_peak(config)
            records.write_atomic(config.run_dir / "manifest.json", {
                "command": config.command,
                "created_at": now(),
                "recipe": config.recipe.to_dict(),
                "threads": config.threads,
                "timeout_s": config.timeout_s,
                "runs": [spec.run_id for spec in config.specs],
                "matmul_peak": matmul_peak,
            })
            for index, spec in enumerate(config.specs):
                kept = existing_ok(record_path(config.run_dir, spec)) if config.resume else None
                if kept is not None:
                    display.finish(spec, kept, kept=True)
                    results.append(kept)
                    continue
                display.start(spec, index, len(config.specs))
                results.append(run_one(spec, config, display, info, machine_info, matmul_peak))
        finally:
            display.close()
    return results
