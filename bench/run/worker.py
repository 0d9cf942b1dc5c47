"""One run in its own process: ``python -m mnist_bench.bench.run.worker REQUEST.json``.

The harness writes a request (backend, mode, device, seed, recipe, threads,
data location, where the record goes) and starts this module in a fresh
interpreter, so frameworks never share a process, a thread pool or device
memory. The worker fixes thread counts and memory behaviour *before* the
framework is imported, builds the backend (failing at once if the device is not
there), trains, and writes its record atomically. Progress goes to stdout as
JSON lines prefixed with :data:`PROGRESS_PREFIX`; framework chatter goes to
stderr, which the harness keeps in the run's log.

Exit codes: 0 ok, 3 device unavailable, 4 diverged, 1 any other failure.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

from mnist_bench.bench.run import launch, training
from mnist_bench.common import contention, parallel, peak, registry
from mnist_bench.common.interface import DeviceUnavailable

PROGRESS_PREFIX = "@@mnist-bench "
EXIT_OK, EXIT_FAILED, EXIT_DEVICE, EXIT_DIVERGED = 0, 1, 3, 4


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def configure_process(threads: int, device: str, backend: str | None = None,
                      topology: parallel.Topology = parallel.SINGLE) -> dict:
    """Pin the process to ``threads`` CPUs and tell every framework the same count.

    Must run before any framework is imported: several read these only at start.
    A data-parallel PyTorch run has one process per device: each gets an equal,
    disjoint share of the ``threads`` CPUs. JAX's virtual CPU devices are set here.
    """
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    rank, ranks = launch.local_rank(backend, topology) if backend else (0, 1)
    if ranks > 1:
        cpus = parallel.cpu_share(cpus, rank, ranks)
        threads = len(cpus)
    os.sched_setaffinity(0, cpus)
    env = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(threads),
        # Without a named backend (a process that may import several), every implementation's own.
        **(launch.framework_env(backend, topology) if backend else registry.all_env()),
    }
    os.environ.update(env)
    info = {"requested": threads, "affinity": cpus, "env": env}
    if ranks > 1:
        info["processes_per_host"] = ranks
    return info


def numerics(device: str) -> dict:
    return {"dtype": "float32", "tf32": False, "matmul_precision": "highest" if device != "cpu" else "default"}


def emit(event: dict) -> None:
    sys.stdout.write(PROGRESS_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def base_record(request: dict) -> dict:
    from mnist_bench.common import machine

    return {
        "schema_version": 1,
        "run_id": request["run_id"],
        "backend": request["backend"],
        "mode": request["mode"],
        "device": request["device"],
        "devices": 1,
        "hosts": 1,
        "seed": request["seed"],
        "recipe": request["recipe"],
        "command": request["command"],
        "started_at": now(),
        "machine": machine.describe(),
        "mnist_bench": request["mnist_bench"],
    }


def resolve_device(backend_cls, recipe, request) -> str:
    """``auto`` becomes the first of gpu, tpu, cpu that the framework can see."""
    if request["device"] != "auto":
        return request["device"]
    for kind in ("gpu", "tpu"):
        try:
            backend_cls(recipe.replace(init="native"), device=kind, mode=request["mode"], seed=0)
            return kind
        except DeviceUnavailable:
            continue
    return "cpu"


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


def run(request: dict, request_path: str | None = None) -> int:
    record = base_record(request)
    topology = parallel.from_mapping(request.get("topology") or {})
    record.update(devices=topology.world, hosts=topology.hosts)
    if topology.hosts > 1:
        record["host_rank"] = topology.host_rank
    # PyTorch: start the other ranks on this host first, so they do not inherit our CPU pinning.
    start_error = None
    try:
        children = launch.start_local_ranks(request["backend"], topology, ["-m", "mnist_bench.bench.run.worker", str(request_path)])
    except (OSError, parallel.TopologyError) as exc:  # a bad coordinator address, no free port, no fork
        children, start_error = [], {"type": type(exc).__name__, "message": f"starting the ranks failed: {exc}"}
    reporter = launch.is_reporter()
    say = emit if reporter else (lambda event: None)
    # All the run's CPUs, read before this rank is pinned to its share of them.
    monitor = contention.Monitor(contention.pinned_cpus(request["threads"]), harness=request.get("harness_pid"))
    record["threads"] = configure_process(request["threads"], request["device"], request["backend"], topology)
    record_path = Path(request["record_path"])
    from mnist_bench.common import records

    finishing = threading.Lock()

    def finish(status: str, code: int, error: dict | None = None) -> int:
        with finishing:
            if status == "ok" and any(launch.wait_ranks(children)):
                status, code = "failed", EXIT_FAILED
                error = {"type": "RankFailed", "message": "another rank of this run failed; see the log"}
            if status != "ok":
                for child in children:
                    child.kill()
            if not reporter:
                return code
            record.update(status=status, error=error, finished_at=now())
            record["contention"] = machine_load(monitor, request, record.get("device"))
            record.setdefault("memory", {})["peak_rss_bytes"] = peak_rss_bytes()
            records.write_atomic(record_path, record)
            say({"event": "done", "status": status})
            return code

    def rank_failed(rank: int, code: int) -> None:
        # The other ranks are blocked in a collective waiting for this one: end the run now.
        os._exit(finish("failed", EXIT_FAILED, {
            "type": "RankFailed", "exit_code": code,
            "message": f"local rank {rank} of {topology.devices} exited with code {code}; its traceback is in the log"}))

    launch.watch_ranks(children, rank_failed)
    if start_error:
        return finish("failed", EXIT_FAILED, start_error)
    try:
        from mnist_bench.common import datasets, pipeline, recipe as recipes
        from mnist_bench.common.registry import known_broken, load_backend

        recipe = recipes.from_mapping(request["recipe"])
        device = resolve_device(load_backend(request["backend"]), recipe, request)
        backend_cls = load_backend(request["backend"], data_parallel=topology.parallel)
        record["device"] = device
        known = known_broken(request["backend"], request["mode"], device)
        if known:
            if not request.get("allow_known_broken"):
                return finish("failed", EXIT_FAILED, {"type": "KnownBroken", "message": known})
            record["known_broken"] = known
        record["numerics"] = numerics(device)
        t0 = time.perf_counter()
        backend = backend_cls(recipe, device=device, mode=request["mode"], seed=request["seed"],
                              threads=record["threads"]["requested"], topology=topology)
        build_s = time.perf_counter() - t0
        record["versions"] = backend.versions()
        record["device_info"] = backend.device_info()
        say({"event": "built", "device": record["device_info"]})
        dataset = datasets.load(recipe.dataset, request.get("data_dir"))
        arrays = pipeline.prepare(dataset, recipe)
        record["data"] = {
            "dataset": recipe.dataset,
            "source": str(dataset.source),
            "train_size": int(len(arrays.train_y)),
            "test_size": int(len(arrays.test_y)),
            "order": "numpy.random.default_rng((seed, epoch)).permutation(train_size)",
            "last_batch": "dropped (training); kept (evaluation)",
        }
        settings = training.LoopSettings(request["chunk_steps"], request["target_accuracy"])
        monitor.start()
        result = training.train(backend, arrays, recipe, request["seed"], settings, sampling(monitor, say))
        result["timing"]["build_s"] = build_s
        result["timing"]["total_wall_s"] = time.perf_counter() - t0
        record.update(result)
        record["memory"] = {"peak_device_bytes": backend.peak_device_memory()}
        record["peak"] = run_peak(request, device)  # after reading device memory: the GPU probe allocates
        record["flops"]["fraction_of_peak"] = peak.fraction(record["flops"]["achieved_gflops"], record["peak"])
        return finish("ok", EXIT_OK)
    except DeviceUnavailable as exc:
        return finish("failed", EXIT_DEVICE, {"type": "DeviceUnavailable", "message": str(exc)})
    except training.Diverged as exc:
        return finish("diverged", EXIT_DIVERGED, {"type": "Diverged", "message": str(exc)})
    except Exception as exc:  # noqa: BLE001 -- every failure becomes a record
        tail = "".join(traceback.format_exception(exc))[-4000:]
        return finish("failed", EXIT_FAILED, {"type": type(exc).__name__, "message": str(exc), "tail": tail})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    return run(request, argv[0])


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The record is written and fsynced; skip the frameworks' slow interpreter teardown.
    os._exit(code)
