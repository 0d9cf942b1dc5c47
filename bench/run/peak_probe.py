"""NumPy's fp32 matmul peak, measured in a fresh interpreter pinned and threaded like a worker.

The probe itself is :mod:`mnist_bench.common.peak`; this starts it through
:mod:`mnist_bench.bench.run.process` (own process group, timeout) for the harness,
the benchmark driver and the benchmark suite.
"""

from __future__ import annotations

import time

from mnist_bench.bench.run import process
from mnist_bench.common import peak
from mnist_bench.common.peak import PeakProbeError

__all__ = ["PeakProbeError", "measure"]


def measure(threads: int, sizes: tuple[int, ...] = peak.DEFAULT_SIZES, repeats: int = peak.DEFAULT_REPEATS,
            timeout_s: float = peak.TIMEOUT_S) -> dict:
    """Measure with ``threads`` BLAS threads, pinned to the CPUs a worker with ``threads`` threads uses.

    Returns ``{"gflops": best GFLOP/s, "per_size_gflops": {n: GFLOP/s}, "device": "cpu",
    "dtype", "source": "numpy", "method", "repeats", "blas", "numpy", "threads",
    "blas_threads_env", "affinity", "wall_s"}``. Raises :class:`PeakProbeError` if it fails.
    """
    cmd, env = peak.probe_command(threads, sizes, repeats)
    start = time.perf_counter()
    try:
        done = process.run(cmd, timeout_s, env=process.child_env(env))
    except process.ChildTimeout:
        raise PeakProbeError(f"the matmul peak probe took longer than {timeout_s:g} s") from None
    if done.returncode != 0:
        raise PeakProbeError(f"the matmul peak probe exited with {done.returncode}: {done.stderr[-2000:]}")
    result = peak.parse_result(done.stdout)
    result["threads"] = threads
    result["wall_s"] = time.perf_counter() - start
    return result
