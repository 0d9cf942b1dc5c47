"""pytest options and fixtures of the benchmark suite (one backend per pytest process).

``pytest bench/benchmarks --mnist-backend torch --benchmark-json out.json`` runs
one backend; ``python -m mnist_bench.bench.benchmarks`` runs them all, one process each.
Nothing here imports a framework at module level: the backend is loaded by a
session fixture after the process is pinned and its thread counts are set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mnist_bench.bench.benchmarks import suite
from mnist_bench.bench.benchmarks.keys import OUTCOMES, PEAKS, SETTINGS, THREADS
from mnist_bench.common import precision as numeric
from mnist_bench.common import registry


def pytest_addoption(parser):
    group = parser.getgroup("mnist-bench", "mnist-bench benchmark suite")
    group.addoption("--mnist-backend", help=f"the backend to benchmark: {', '.join(registry.names())} (required)")
    group.addoption("--mnist-modes", default="all", help="'all' (default), 'default' or comma-separated mode names")
    group.addoption("--mnist-device", default="cpu", choices=registry.DEVICES, help="device kind (default cpu)")
    group.addoption("--mnist-precisions", default=numeric.DEFAULT,
                    help="comma-separated precisions (default fp32): fp32, bf16, fp16, tf32 (README, Precision)")
    group.addoption("--mnist-batch-sizes", default=",".join(map(str, suite.DEFAULT_BATCH_SIZES)),
                    help="comma-separated batch sizes (default 64,512)")
    group.addoption("--mnist-rounds", type=int, default=suite.DEFAULT_ROUNDS, help="timed rounds (default 10)")
    group.addoption("--mnist-warmup-rounds", type=int, default=suite.DEFAULT_WARMUP_ROUNDS,
                    help="untimed rounds first: tracing, compilation, caches (default 2)")
    group.addoption("--mnist-chunk-steps", type=int, default=0,
                    help=f"steps (batches) per round; 0 (default): about {suite.ROUND_SAMPLES} images per round")
    group.addoption("--mnist-threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="CPU threads for the framework, and the CPUs the process is pinned to (default: all)")
    group.addoption("--mnist-data-dir", help="dataset root holding mnist/ (else $MNIST_BENCH_DATA or the cache)")
    group.addoption("--mnist-peak-file", help="a mnist_bench.common.peak result (JSON) measured by the driver for this run")
    group.addoption("--mnist-no-peak-probe", action="store_true", help="measure no matmul peak (fraction_of_peak null)")
    group.addoption("--mnist-allow-known-broken", action="store_true",
                    help="time (backend, mode, device) combinations known to compute wrong results")
    group.addoption("--mnist-quiet-wait", metavar="JSON",
                    help="the driver's quiet-wait result before this process (recorded in the JSON's mnist_bench block)")


def _settings(config) -> suite.Settings:
    option = config.getoption
    backend = option("--mnist-backend")
    if not backend:
        raise pytest.UsageError("the benchmark suite needs --mnist-backend NAME (one of "
                                f"{', '.join(registry.names())}); or run them all with: python -m mnist_bench.bench.benchmarks")
    try:
        suite.check_backend(backend)
        modes = suite.select_modes(backend, option("--mnist-modes"))
        batch_sizes = suite.parse_batch_sizes(option("--mnist-batch-sizes"))
        precisions = tuple(dict.fromkeys(part.strip() for part in option("--mnist-precisions").split(",")
                                         if part.strip()))
        suite.check_precisions(backend, precisions or ("",), option("--mnist-device"))
    except suite.SuiteError as exc:
        raise pytest.UsageError(str(exc)) from None
    for name in ("--mnist-rounds", "--mnist-threads"):
        if option(name) < 1:
            raise pytest.UsageError(f"{name} must be at least 1, got {option(name)}")
    for name in ("--mnist-warmup-rounds", "--mnist-chunk-steps"):
        if option(name) < 0:
            raise pytest.UsageError(f"{name} must be 0 or more, got {option(name)}")
    quiet_wait = None
    if option("--mnist-quiet-wait"):
        try:
            quiet_wait = json.loads(option("--mnist-quiet-wait"))
        except json.JSONDecodeError as exc:
            raise pytest.UsageError(f"--mnist-quiet-wait must be a JSON object: {exc}") from None
    return suite.Settings(
        backend=backend, modes=modes, device=option("--mnist-device"), batch_sizes=batch_sizes,
        rounds=option("--mnist-rounds"), warmup_rounds=option("--mnist-warmup-rounds"),
        chunk_steps=option("--mnist-chunk-steps"), threads=option("--mnist-threads"),
        data_dir=option("--mnist-data-dir"), peak_file=option("--mnist-peak-file"),
        peak_probe=not option("--mnist-no-peak-probe"), allow_known_broken=option("--mnist-allow-known-broken"),
        quiet_wait=quiet_wait, precisions=precisions,
    )


def pytest_configure(config):
    from mnist_bench.bench.run.process_setup import configure_process

    settings = _settings(config)
    config.stash[SETTINGS] = settings
    config.stash[OUTCOMES] = []
    config.pluginmanager.register(_OutcomeRecorder(config.stash[OUTCOMES]), "mnist-bench-outcomes")
    config.stash[PEAKS] = {}
    # Before any framework loads: pinned to the same CPUs, with the same thread counts, as a harness worker.
    config.stash[THREADS] = configure_process(settings.threads, settings.device, settings.backend)


def pytest_generate_tests(metafunc):
    settings = metafunc.config.stash[SETTINGS]
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", settings.modes, ids=[f"{settings.backend}-{mode}" for mode in settings.modes])
    if "batch_size" in metafunc.fixturenames:
        # fp32 keeps the ids it had before precisions existed (torch-eager-b64), so --compare still matches
        # saved runs; another precision is named (torch-eager-b64-bf16).
        cases = [(size, precision) for size in settings.batch_sizes for precision in settings.precisions]
        metafunc.parametrize("batch_size,precision", cases,
                             ids=[f"b{size}" + ("" if precision == numeric.DEFAULT else f"-{precision}")
                                  for size, precision in cases])


class _OutcomeRecorder:
    """Keeps every test's outcome, with the reason for skips and failures, for the JSON."""

    def __init__(self, outcomes: list) -> None:
        self.outcomes = outcomes

    def pytest_runtest_logreport(self, report):
        if report.when != "call" and not (report.failed or report.skipped):
            return
        reason = None
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = report.longrepr[2]
        elif report.failed:
            reason = report.longreprtext[-2000:]
        self.outcomes.append({"test": report.nodeid, "when": report.when, "outcome": report.outcome, "reason": reason})


def _mnist_bench_block(config) -> dict:
    settings = config.stash[SETTINGS]
    peaks = config.stash[PEAKS]
    return {
        "backend": settings.backend,
        "device": settings.device,
        "modes": list(settings.modes),
        "batch_sizes": list(settings.batch_sizes),
        "precisions": list(settings.precisions),
        "rounds": settings.rounds,
        "warmup_rounds": settings.warmup_rounds,
        "threads": config.stash[THREADS],
        "matmul_peak": peaks.get("cpu"),
        "framework_matmul_peak": peaks.get("framework"),
        "quiet_wait": settings.quiet_wait,
        "outcomes": config.stash[OUTCOMES],
    }


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["mnist_bench"] = _mnist_bench_block(config)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    # pytest-benchmark writes no file when nothing was timed (every test skipped, say);
    # write one anyway, so the skips and their reasons are on record.
    path = session.config.getoption("benchmark_json", None)
    if path is not None and not Path(path).exists() and SETTINGS in session.config.stash:
        document = {"benchmarks": [], "mnist_bench": _mnist_bench_block(session.config)}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(request) -> suite.Settings:
    return request.config.stash[SETTINGS]


@pytest.fixture(scope="session")
def backend_cls(settings):
    return registry.load_backend(settings.backend)


@pytest.fixture(scope="session")
def arrays(settings):
    from mnist_bench.common import datasets, pipeline

    return pipeline.prepare(datasets.load("mnist", settings.data_dir), suite.recipe_for(64))


@pytest.fixture(scope="session")
def cpu_peak(request, settings) -> dict | None:
    """NumPy's fp32 matmul peak with this run's threads: from the driver's file, else measured now."""
    from mnist_bench.bench.run import peak_probe

    result = None
    if settings.peak_file:
        result = json.loads(Path(settings.peak_file).read_text(encoding="utf-8"))
    elif settings.peak_probe:
        result = peak_probe.measure(settings.threads)
    request.config.stash[PEAKS]["cpu"] = result
    return result


@pytest.fixture(scope="session")
def framework_peaks(request, settings, backend_cls) -> dict:
    """The framework's own fp32 matmul peak per device kind, measured once (after the backend is loaded)."""
    from mnist_bench.bench.perf import device_peak

    measured: dict[str, dict | None] = {}

    def get(device: str) -> dict | None:
        if not settings.peak_probe:
            return None
        if device not in measured:
            measured[device] = device_peak.measure(settings.backend, device)
            request.config.stash[PEAKS]["framework"] = measured[device]
        return measured[device]

    return get


@pytest.fixture(scope="session")
def backends(settings, backend_cls):
    """One backend per (mode, batch size, precision), built once and shared by its train and eval benchmarks.

    Each is checked as a harness worker checks it: the framework must report computing in the precision.
    """
    from mnist_bench.bench.run.process_setup import resolve_device

    built = {}

    def get(mode: str, batch_size: int, precision: str = numeric.DEFAULT):
        key = (mode, batch_size, precision)
        if key not in built:
            recipe = suite.recipe_for(batch_size)
            device = resolve_device(backend_cls, recipe, settings.device, mode)
            reason = suite.known_broken(settings.backend, mode, device)
            if reason and not settings.allow_known_broken:
                built[key] = (None, device, reason)
            else:
                backend = backend_cls(recipe, device=device, mode=mode, seed=0, threads=settings.threads,
                                      precision=precision)
                numeric.check_applied(precision, backend.numerics())
                built[key] = (backend, device, reason)
        return built[key]

    return get
