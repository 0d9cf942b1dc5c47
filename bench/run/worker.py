"""One run in its own process: ``python -m mnist_bench.bench.run.worker REQUEST.json``.

The harness writes a request (backend, mode, device, seed, recipe, threads,
data location, where the record goes) and starts this module in a fresh
interpreter, so frameworks never share a process, a thread pool or device
memory. The worker fixes thread counts and memory behaviour *before* the
framework is imported, builds the backend (failing at once if the device is not
there), trains, and writes its record atomically. Progress goes to stdout as
JSON lines prefixed with :data:`PROGRESS_PREFIX`; framework chatter goes to
stderr, which the harness keeps in the run's log. A worker whose harness is gone
ends at once (:mod:`mnist_bench.bench.run.orphan`).

Exit codes: 0 ok, 3 device unavailable, 4 diverged, 1 any other failure.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

from mnist_bench.bench.exit_codes import EXIT_DEVICE, EXIT_DIVERGED, EXIT_FAILED, EXIT_OK
from mnist_bench.bench.run import launch, orphan, training
from mnist_bench.bench.run.process_setup import configure_process, resolve_device
from mnist_bench.bench.run.record import for_worker, now
from mnist_bench.common import contention, machine, parallel, peak, records
from mnist_bench.common import precision as numeric
from mnist_bench.common.interface import DeviceUnavailable

PROGRESS_PREFIX = "@@mnist-bench "


def emit(event: dict) -> None:
    sys.stdout.write(PROGRESS_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def _silent(event: dict) -> None:
    """Progress of a rank other than the reporter: nobody reads it."""


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class KnownBroken(RuntimeError):
    """The combination is known to compute wrong results and the request did not allow it."""


def run_peak(request: dict, device: str) -> dict | None:
    """The fp32 matmul peak this run is measured against (None when the sweep turned probing off).

    On a CPU, the sweep's NumPy probe (:mod:`mnist_bench.common.peak`); on a GPU or TPU, the run's own
    framework timing matmuls on that device, here (:mod:`mnist_bench.bench.perf.device_peak`). A probe
    that fails is recorded with its error, never failing the run.
    """
    cpu_peak = request.get("matmul_peak")
    if device == "cpu" or cpu_peak is None:
        return cpu_peak
    from mnist_bench.bench.perf import device_peak

    try:
        return device_peak.measure(request["backend"], device)
    except Exception as exc:  # noqa: BLE001 -- a failed probe is a missing denominator, not a failed run
        return {"gflops": None, "device": device, "source": request["backend"], "error": f"{type(exc).__name__}: {exc}"}


def sampling(monitor: contention.Monitor, say):
    """``say``, reading the machine's load first: after every chunk and every evaluation (off the clock)."""

    def progress(event: dict) -> None:
        interval = monitor.sample()
        if interval is not None and event.get("event") == "step":
            event = {**event, "other_share": round(interval.other, 3)}
        say(event)

    return progress


def machine_load(monitor: contention.Monitor, request: dict, device: str | None) -> dict:
    """The record's ``contention`` block; a run that failed before training has the harness's wait only."""
    gpu = contention.gpu_other_processes(contention.own_pids(os.getpid())) if device == "gpu" else None
    if monitor.available:
        monitor.sample()
        block = monitor.summary(gpu)
    else:
        block = {"version": contention.VERSION, "cpus": monitor.cpus, "threshold": contention.CONTENDED_SHARE,
                 "gpu_other_processes": gpu}
    return {**block, "quiet_wait": request.get("quiet_wait")}


class Outcome:
    """Ends the run once, from the main thread or a rank watcher: stops the ranks, writes the record, reports.

    Only the reporter (local rank 0) writes the record and says ``done``; every rank returns its exit code.
    """

    def __init__(self, request: dict, record: dict, topology: parallel.Topology, children: list,
                 monitor: contention.Monitor, say) -> None:
        self.request, self.record, self.topology = request, record, topology
        self.children, self.monitor, self.say = children, monitor, say
        self._lock = threading.Lock()

    def finish(self, status: str, code: int, error: dict | None = None) -> int:
        with self._lock:
            if status == "ok" and any(launch.wait_ranks(self.children)):
                status, code = "failed", EXIT_FAILED
                error = {"type": "RankFailed", "message": "another rank of this run failed; see the log"}
            if status != "ok":
                for child in self.children:
                    child.kill()
            if not launch.is_reporter():
                return code
            record = self.record
            record.update(status=status, error=error, finished_at=now())
            record["contention"] = machine_load(self.monitor, self.request, record.get("device"))
            record.setdefault("memory", {})["peak_rss_bytes"] = peak_rss_bytes()
            records.write_atomic(Path(self.request["record_path"]), record)
            self.say({"event": "done", "status": status})
            return code

    def rank_failed(self, rank: int, code: int) -> None:
        """From a watcher thread: the other ranks are blocked in a collective waiting for this one, so end now."""
        os._exit(self.finish("failed", EXIT_FAILED, {
            "type": "RankFailed", "exit_code": code,
            "message": f"local rank {rank} of {self.topology.devices} exited with code {code}; its traceback is in the log"}))


def start_ranks(request: dict, request_path: str | None, topology: parallel.Topology) -> tuple[list, dict | None]:
    """PyTorch data-parallel: the other ranks on this host, started before this one is pinned (they would inherit it).

    Returns (child processes, None), or ([], the error) when they could not be started.
    """
    argv = ["-m", "mnist_bench.bench.run.worker", str(request_path)]
    try:
        return launch.start_local_ranks(request["backend"], topology, argv), None
    except (OSError, parallel.TopologyError) as exc:  # a bad coordinator address, no free port, no fork
        return [], {"type": type(exc).__name__, "message": f"starting the ranks failed: {exc}"}


def build(request: dict, record: dict, topology: parallel.Topology):
    """The backend on the resolved device, filling the record's device, versions and numerics.

    Returns (backend, recipe, when its construction started, seconds it took).
    """
    from mnist_bench.common import recipe as recipes
    from mnist_bench.common.registry import known_broken, load_backend, spec

    recipe = recipes.from_mapping(request["recipe"])
    device = resolve_device(load_backend(request["backend"]), recipe, request["device"], request["mode"])
    backend_cls = load_backend(request["backend"], data_parallel=topology.parallel)
    record["device"] = device
    known = known_broken(request["backend"], request["mode"], device)
    if known:
        if not request.get("allow_known_broken"):
            raise KnownBroken(known)
        record["known_broken"] = known
    precision = request.get("precision", numeric.DEFAULT)
    refused = numeric.refusal(precision, device, machine.cpu_flags())  # "auto" is resolved only here
    if refused:
        raise numeric.PrecisionRefused(refused)
    t0 = time.perf_counter()
    backend = backend_cls(recipe, device=device, mode=request["mode"], seed=request["seed"],
                          threads=record["threads"]["requested"], topology=topology, precision=precision)
    build_s = time.perf_counter() - t0
    record["numerics"] = backend.numerics()  # what the framework applied, read back once it is built
    if not spec(request["backend"]).oracle:  # the oracle's mode is its number format (float64 as the reference)
        numeric.check_applied(precision, record["numerics"])
    record["versions"] = backend.versions()
    record["device_info"] = backend.device_info()
    return backend, recipe, t0, build_s


def data_block(recipe, dataset, arrays) -> dict:
    return {
        "dataset": recipe.dataset,
        "source": str(dataset.source),
        "train_size": int(len(arrays.train_y)),
        "test_size": int(len(arrays.test_y)),
        "order": "numpy.random.default_rng((seed, epoch)).permutation(train_size)",
        "last_batch": "dropped (training); kept (evaluation)",
    }


def train_and_measure(request: dict, record: dict, topology: parallel.Topology, monitor: contention.Monitor,
                      say) -> None:
    """Build, train and measure, filling ``record``; raises on any failure (:func:`run` records it)."""
    from mnist_bench.common import datasets, pipeline

    backend, recipe, t0, build_s = build(request, record, topology)
    say({"event": "built", "device": record["device_info"]})
    dataset = datasets.load(recipe.dataset, request.get("data_dir"))
    arrays = pipeline.prepare(dataset, recipe)
    record["data"] = data_block(recipe, dataset, arrays)
    settings = training.LoopSettings(request["chunk_steps"], request["target_accuracy"])
    monitor.start()
    result = training.train(backend, arrays, recipe, request["seed"], settings, sampling(monitor, say))
    result["timing"]["build_s"] = build_s
    result["timing"]["total_wall_s"] = time.perf_counter() - t0
    record.update(result)
    record["memory"] = {"peak_device_bytes": backend.peak_device_memory()}
    record["peak"] = run_peak(request, record["device"])  # after reading device memory: the GPU probe allocates
    record["flops"]["fraction_of_peak"] = peak.fraction(record["flops"]["achieved_gflops"], record["peak"])


def run(request: dict, request_path: str | None = None) -> int:
    """One run from its request to its record; returns the exit code."""
    topology = parallel.from_mapping(request.get("topology") or {})
    record = for_worker(request)
    record.update(devices=topology.world, hosts=topology.hosts)
    if topology.hosts > 1:
        record["host_rank"] = topology.host_rank
    children, start_error = start_ranks(request, request_path, topology)
    say = emit if launch.is_reporter() else _silent
    # All the run's CPUs, read before this rank is pinned to its share of them.
    monitor = contention.Monitor(contention.pinned_cpus(request["threads"]), harness=request.get("harness_pid"))
    record["threads"] = configure_process(request["threads"], request["device"], request["backend"], topology)
    outcome = Outcome(request, record, topology, children, monitor, say)
    launch.watch_ranks(children, outcome.rank_failed)
    if start_error:
        return outcome.finish("failed", EXIT_FAILED, start_error)
    try:
        train_and_measure(request, record, topology, monitor, say)
        return outcome.finish("ok", EXIT_OK)
    except KnownBroken as exc:
        return outcome.finish("failed", EXIT_FAILED, {"type": "KnownBroken", "message": str(exc)})
    except DeviceUnavailable as exc:
        return outcome.finish("failed", EXIT_DEVICE, {"type": "DeviceUnavailable", "message": str(exc)})
    except training.Diverged as exc:
        return outcome.finish("diverged", EXIT_DIVERGED, {"type": "Diverged", "message": str(exc)})
    except Exception as exc:  # noqa: BLE001 -- every failure becomes a record
        tail = "".join(traceback.format_exception(exc))[-4000:]
        return outcome.finish("failed", EXIT_FAILED, {"type": type(exc).__name__, "message": str(exc), "tail": tail})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    # The harness started local rank 0; rank 0 started the other ranks (or torchrun did).
    orphan.die_with_parent(request.get("harness_pid") if not parallel.launched_by_launcher() else None)
    return run(request, argv[0])


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The record is written and fsynced; skip the frameworks' slow interpreter teardown.
    os._exit(code)
