"""The machine's fp32 matmul peak, measured with NumPy: the denominator of "fraction of peak".

Achieved GFLOP/s on its own says little across machines; as a fraction of what
this machine's BLAS reaches on a large fp32 matmul it says how close a
framework runs to the hardware. The probe times square ``float32`` matmuls
(``2 n^3`` FLOPs each) at a few sizes and keeps the best rate of several
repeats, so a scheduler hiccup lowers no figure but the worst.

Thread count and CPU affinity must match the runs being compared against, and
NumPy's BLAS reads its thread count (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``) only when NumPy is first imported. :func:`probe_command` is therefore run in a fresh
interpreter (:func:`mnist_bench.bench.run.peak_probe.measure`) with those variables
and pinned to the same CPUs the workers use (the first ``threads`` of this
process's affinity). :func:`measure` measures in this process, with whatever BLAS threads
NumPy already has.

``python -m mnist_bench.common.peak --threads N`` prints the result as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

DEFAULT_SIZES = (1024, 2048)
DEFAULT_REPEATS = 5
METHOD = "numpy.matmul, float32, square n x n, 2n^3 FLOPs, best of repeats"
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
TIMEOUT_S = 300


class PeakProbeError(RuntimeError):
    """The probe process failed or printed something that is not its result."""


def pinned_cpus(threads: int) -> list[int]:
    """The CPUs a run with ``threads`` threads is pinned to (as :mod:`mnist_bench.bench.run.process_setup` does)."""
    return sorted(os.sched_getaffinity(0))[:threads]


def blas_env(threads: int) -> dict[str, str]:
    """Environment variables that give NumPy's BLAS ``threads`` threads (read at NumPy import)."""
    return {name: str(threads) for name in BLAS_THREAD_VARIABLES}


def _blas_name() -> str | None:
    import numpy as np

    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}".strip()
    except Exception:  # noqa: BLE001 -- informational only; older NumPy has no dict mode
        return None


def measure(sizes: tuple[int, ...] = DEFAULT_SIZES, repeats: int = DEFAULT_REPEATS) -> dict:
    """Measure in this process. Returns the JSON-ready result (see :func:`mnist_bench.bench.run.peak_probe.measure`)."""
    import numpy as np

    if not sizes or any(n < 1 for n in sizes) or repeats < 1:
        raise ValueError(f"need positive sizes and repeats, got sizes={sizes!r} repeats={repeats!r}")
    rng = np.random.default_rng(0)
    per_size = {}
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), np.float32)
        np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - start)
        per_size[str(n)] = 2.0 * n**3 / best / 1e9
    return {
        "gflops": max(per_size.values()),
        "per_size_gflops": per_size,
        "device": "cpu",
        "dtype": "float32",
        "source": "numpy",
        "method": METHOD,
        "repeats": repeats,
        "blas": _blas_name(),
        "numpy": np.__version__,
        "blas_threads_env": {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES},
        "affinity": sorted(os.sched_getaffinity(0)),
    }


def probe_command(threads: int, sizes: tuple[int, ...] = DEFAULT_SIZES, repeats: int = DEFAULT_REPEATS,
                  python: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and the extra environment that measure with ``threads`` BLAS threads, pinned like a worker.

    :mod:`mnist_bench.bench.run.peak_probe` starts it in a fresh interpreter; its last line of output is the result.
    """
    cmd = [python or sys.executable, "-m", "mnist_bench.common.peak", "--threads", str(threads),
           "--repeats", str(repeats), "--sizes", ",".join(map(str, sizes))]
    return cmd, blas_env(threads)


def parse_result(stdout: str) -> dict:
    """The probe's JSON result, from the last line it printed; :class:`PeakProbeError` if there is none."""
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise PeakProbeError(f"the matmul peak probe printed no result: {stdout[-500:]!r}") from None


def for_device(device: str, cpu_peak: dict | None, device_peak: dict | None) -> dict | None:
    """The peak a run on ``device`` is measured against: NumPy's on a CPU, the framework's probe elsewhere."""
    return cpu_peak if device == "cpu" else device_peak


def fraction(achieved_gflops: float | None, peak: dict | None) -> float | None:
    """``achieved / peak``, or None when either is unknown."""
    if achieved_gflops is None or not peak or not peak.get("gflops"):
        return None
    return achieved_gflops / peak["gflops"]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mnist_bench.common.peak", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated n")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    args = parser.parse_args(argv)
    # Pin before the first matmul starts BLAS threads. The thread count itself comes from the
    # environment, which must be set before NumPy loads: set here too, for direct use.
    os.sched_setaffinity(0, pinned_cpus(args.threads))
    if "numpy" not in sys.modules:
        os.environ.update(blas_env(args.threads))
    result = measure(tuple(int(n) for n in args.sizes.split(",") if n.strip()), args.repeats)
    result["threads"] = args.threads
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
