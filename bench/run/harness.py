"""The harness: runs a sweep of (backend, mode, device, seed) one worker process at a time.

Every run gets a fresh interpreter (:mod:`mnist_bench.bench.run.worker`), a per-run timeout and
its own log. Whatever happens to a worker -- an exception, a crash, SIGKILL, a
hang, a diverging loss, Ctrl-C -- the run ends with a schema-valid record in the
run directory, and the runs before and after it are unaffected. A lock keeps
two harnesses out of one run directory; what a sweep may add to a directory that
already holds records is decided by :mod:`mnist_bench.bench.run.run_dir`, and
``resume`` re-runs only the runs whose record is missing or not ``ok``.

A record is replaced only when its successor is written: the worker writes its
record to ``<run id>.pending.json`` and the harness moves it over the old one
(``os.replace``, atomic). A run that was interrupted, or not started because the
machine stayed busy, says nothing about the code, so where the directory already
holds an ``ok`` record for it (``--overwrite``) that record is kept, and stays the
run's result until a later sweep replaces it. A record that cannot be written (a
full or read-only disk) stops the sweep with :class:`NotRecorded`, naming the file,
the error and every run left without a record.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import signal
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

from mnist_bench.bench.run import process, record, run_dir
from mnist_bench.bench.run.record import now
from mnist_bench.bench.run.worker import PROGRESS_PREFIX
from mnist_bench.common import contention, machine, records
from mnist_bench.common import precision as numeric
from mnist_bench.common.recipe import Recipe
LOG_TAIL_CHARS = 4000


class RunDirBusy(RuntimeError):
    """Another harness holds the run directory's lock."""


class MachineBusy(RuntimeError):
    """The machine did not become quiet in time and the sweep was told to stop (``--if-busy stop``)."""


class NotRecorded(RuntimeError):
    """A file of the run directory could not be written (disk full, read-only, gone); the sweep stops."""

    def __init__(self, path: Path, error: OSError, unrecorded: tuple[str, ...] = (), note: str = "") -> None:
        self.path, self.error, self.unrecorded, self.note = Path(path), error, unrecorded, note
        name = errno.errorcode.get(error.errno, "") if error.errno else ""
        self.reason = f"[Errno {error.errno}{' ' + name if name else ''}] {error.strerror or error}"
        super().__init__(f"could not write {self.path}: {self.reason}" + (f" ({note})" if note else ""))

    def without(self, unrecorded: list[str]) -> "NotRecorded":
        """The same failure, naming the runs it left without a record."""
        return NotRecorded(self.path, self.error, tuple(unrecorded), self.note)


def _write(path: Path, document) -> Path:
    """:func:`records.write_atomic`, raising :class:`NotRecorded` when the disk refuses."""
    try:
        return records.write_atomic(path, document)
    except OSError as exc:
        raise NotRecorded(path, exc) from None


@dataclass(frozen=True)
class RunSpec:
    backend: str
    mode: str
    device: str
    seed: int
    devices: int = 1  # per host; data-parallel when devices * hosts > 1
    hosts: int = 1
    precision: str = numeric.DEFAULT  # common/precision.py; a manifest written before it held fp32 runs only

    @property
    def run_id(self) -> str:
        world = self.devices * self.hosts
        return (f"{self.backend}-{self.mode}-{self.device}-{f'd{world}-' if world > 1 else ''}"
                f"{numeric.run_id_part(self.precision)}s{self.seed}")


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
    action: str = "out"  # or "overwrite", "resume", "extend": what run_dir.prepare allows in run_dir
    allow_known_broken: bool = False
    peak_probe: bool = True
    host_rank: int = 0  # with hosts > 1: this host's place, and where host 0 listens
    coordinator: str | None = None
    require_quiet: bool = True  # wait for a quiet machine before each run
    quiet_wait_s: float = 120.0
    if_busy: str = "proceed"  # or "stop": what to do when it is still busy after quiet_wait_s


class Display(Protocol):
    def plan(self, specs: list[RunSpec]) -> None: ...  # every run of the sweep, before the first starts
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


def pending_path(run_dir: Path, spec: RunSpec) -> Path:
    """Where the worker writes its record; not a ``*.run.json`` name, so no reader takes it for a result."""
    return run_dir / f"{spec.run_id}.pending.json"


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
              executor: dict | None, status: str, error: dict, started_at: str, quiet_wait: dict | None = None) -> dict:
    """Write the harness's record for a run the worker could not record, and show it.

    An ``interrupted`` run (stopped, or never started) does not replace an ``ok`` record already there.
    """
    if status == "interrupted" and (kept := existing_ok(path)) is not None:
        display.note(f"{spec.run_id}: {error['message'].split(';')[0]}; its earlier ok record "
                     f"(started {kept['started_at']}) is kept")
        return kept
    written = record.for_harness(spec, config, status, error, started_at, info, machine_info, quiet_wait, executor)
    _write(path, written)
    display.finish(spec, written)
    return written


def _request(spec: RunSpec, config: SweepConfig, path: Path, info: dict, matmul_peak: dict | None,
             quiet_wait: dict | None, executor: dict | None = None) -> dict:
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
        **({"executor": executor} if executor else {}),
    }


def _run_worker(spec: RunSpec, config: SweepConfig, request: dict, log_path: Path, display: Display) -> int | None:
    """Run the worker on ``request``; its exit code, or None when it timed out (its process group is killed).

    Interrupted (Ctrl-C, SIGTERM), the worker's group is killed and KeyboardInterrupt goes on.
    """
    request_path = config.run_dir / f"{spec.run_id}.request.json"
    _write(request_path, request)
    try:
        log = open(log_path, "w", encoding="utf-8")
    except OSError as exc:
        raise NotRecorded(log_path, exc) from None
    with log:
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


def _adopt(pending: Path, path: Path) -> tuple[dict | None, str | None]:
    """Move the worker's valid record over ``path``: (the record, None), (None, why it is unusable) or (None, None)."""
    written, invalid = _written_record(pending)
    if written is not None:
        try:
            os.replace(pending, path)
        except OSError as exc:
            raise NotRecorded(path, exc, note=f"the worker's record is kept in {pending}") from None
    elif invalid is not None:
        with contextlib.suppress(OSError):
            pending.unlink()
    return written, invalid


def run_one(spec: RunSpec, config: SweepConfig, display: Display, info: dict, machine_info: dict,
            matmul_peak: dict | None = None, place: tuple[int, int] = (0, 1), executor: dict | None = None) -> dict:
    """Run ``spec`` (the ``place``-th of a sweep: index, total) and return its record, in the run directory by then.

    ``executor``: where a scheduler ran this (:mod:`.slurm_job`: job id, node), copied into the record.

    KeyboardInterrupt (the first Ctrl-C or SIGTERM; :mod:`.interrupts` ignores the rest) goes on once the run
    is recorded: the worker's own record if it finished in time, else an ``interrupted`` one. A run is
    announced as starting only inside that guarantee.
    """
    path, pending = record_path(config.run_dir, spec), pending_path(config.run_dir, spec)
    conclude = functools.partial(_conclude, path, spec, config, display, info, machine_info, executor)
    state = {"started_at": now(), "quiet_wait": None, "log": None}
    try:
        display.start(spec, *place)
        pending.unlink(missing_ok=True)  # left by a harness killed mid-run: not this run's
        return _attempt(spec, config, display, info, matmul_peak, conclude, state, path, pending, executor)
    except KeyboardInterrupt:
        written, _ = _adopt(pending, path)  # it may have finished as the signal came
        if written is not None:
            display.finish(spec, written)
        elif state["log"] is None:
            waiting = config.require_quiet and state["quiet_wait"] is None
            message = "while waiting for a quiet machine" if waiting else "before its worker started"
            conclude("interrupted", {"type": "KeyboardInterrupt",
                                     "message": f"interrupted {message}; --resume runs it"},
                     state["started_at"], state["quiet_wait"])
        else:
            conclude("interrupted", {"type": "KeyboardInterrupt", "tail": _tail(state["log"]),
                                     "message": "interrupted by the user (Ctrl-C or SIGTERM); --resume re-runs it"},
                     state["started_at"], state["quiet_wait"])
        raise


def _attempt(spec: RunSpec, config: SweepConfig, display: Display, info: dict, matmul_peak: dict | None,
             conclude, state: dict, path: Path, pending: Path, executor: dict | None = None) -> dict:
    state["quiet_wait"] = quiet_wait = wait_for_quiet(spec, config, display)
    state["started_at"] = started_at = now()
    if quiet_wait is not None and not quiet_wait["quiet"] and config.if_busy == "stop":
        written = conclude("interrupted", {
            "type": "MachineBusy",
            "message": f"not started: other processes used {quiet_wait['other_share']:.0%} of its CPUs after "
                       f"waiting {quiet_wait['waited_s']:g} s (--if-busy stop); --resume runs it later"},
            started_at, quiet_wait)
        raise MachineBusy(written["error"]["message"] if written["status"] != "ok" else "the machine stayed busy")
    state["log"] = log_path = config.run_dir / f"{spec.run_id}.log"
    request = _request(spec, config, pending, info, matmul_peak, quiet_wait, executor)
    code = _run_worker(spec, config, request, log_path, display)
    if code is None:
        pending.unlink(missing_ok=True)  # the run is over, whatever it wrote as it was killed
        status, error = "timeout", {"type": "Timeout",
                                    "message": f"run exceeded its timeout of {config.timeout_s:g} s and was killed"}
    else:
        written, invalid = _adopt(pending, path)
        if written is not None:
            display.finish(spec, written)
            return written
        message = _describe_exit(code) if invalid is None else (
            f"worker exited with code {code} and left an invalid record: {invalid}")
        status, error = "failed", {"type": "WorkerDied" if invalid is None else "InvalidRecord",
                                   "message": message, "exit_code": code}
    return conclude(status, {**error, "tail": _tail(log_path)}, started_at, quiet_wait)


def run_sweep(config: SweepConfig, display: Display, after_run: Callable[[], None] | None = None) -> list[dict]:
    """Run every planned run (with ``resume``, skipping those already ok); return their records.

    ``after_run`` is called once each run is recorded (the CLI rewrites the report there, so a sweep
    stopped early still has one).

    Raises :class:`~mnist_bench.bench.run.run_dir.DirectoryRefused` before writing anything when the
    run directory's rules refuse the request, and :class:`NotRecorded` (listing the runs left without
    a record) when the disk refuses a write.
    """
    info = record.mnist_bench_info()
    machine_info = machine.describe()
    results: list[dict] = []
    with locked(config.run_dir):
        try:
            specs, manifest = run_dir.prepare(config, info, config.action, config.command, now())
            matmul_peak = measure_peak(config)
            manifest["sessions"][-1]["matmul_peak"] = matmul_peak
            if config.action == "out" or "matmul_peak" not in manifest:
                manifest["matmul_peak"] = matmul_peak
            _write(config.run_dir / run_dir.MANIFEST, manifest)
            display.plan(specs)
            for index, spec in enumerate(specs):
                kept = existing_ok(record_path(config.run_dir, spec)) if config.action in ("resume", "extend") else None
                if kept is not None:
                    display.finish(spec, kept, kept=True)
                    results.append(kept)
                    continue
                try:
                    results.append(run_one(spec, config, display, info, machine_info, matmul_peak,
                                           (index, len(specs))))
                except NotRecorded as exc:
                    raise exc.without([s.run_id for s in specs[index:]]) from None
                if after_run is not None:
                    after_run()
        except NotRecorded as exc:
            if not exc.unrecorded:  # the manifest: no run started
                raise exc.without([spec.run_id for spec in config.specs]) from None
            raise
        finally:
            display.close()
    return results
