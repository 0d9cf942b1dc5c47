"""The fp32 matmul peak of a device as one framework reaches it, measured in that framework's process.

On a GPU the NumPy probe (:mod:`mnist_bench.common.peak`) measures the wrong chip, so the run's
own framework times square float32 matmuls on the run's device, with the same
numerics the backends use (no TF32, JAX at ``highest`` precision off-CPU). Each
timing covers enough matmuls to last ``min_block_s`` and ends with the result
brought to the host, so the device is synchronised inside the clock; the best
block of ``repeats`` wins. On a CPU it is a cross-check of the framework's BLAS
against NumPy's.

The probes themselves live in each implementation's folder (its spec's ``matmul_probe``) and
import their framework inside the function, so importing this module imports none.
"""

from __future__ import annotations

import time
from typing import Callable

from mnist_bench.common import registry

CPU_SIZES = (1024, 2048)
ACCELERATOR_SIZES = (4096, 8192)
DEFAULT_REPEATS = 3
MIN_BLOCK_S = 0.05
MAX_ITERATIONS = 1000


def _best_rate(n: int, run_block: Callable[[int], None], repeats: int, min_block_s: float) -> float:
    """Best GFLOP/s over ``repeats`` blocks; a block is ``k`` matmuls, ``k`` grown until it lasts min_block_s."""
    run_block(1)  # warm-up: compilation, allocation, library start-up
    k = 1
    while True:
        start = time.perf_counter()
        run_block(k)
        elapsed = time.perf_counter() - start
        if elapsed >= min_block_s or k >= MAX_ITERATIONS:
            break
        k = min(MAX_ITERATIONS, max(k * 2, int(k * min_block_s / max(elapsed, 1e-9)) + 1))
    best = elapsed
    for _ in range(repeats - 1):
        start = time.perf_counter()
        run_block(k)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 * k / best / 1e9


def measure(backend: str, device: str, sizes: tuple[int, ...] | None = None, repeats: int = DEFAULT_REPEATS,
            min_block_s: float = MIN_BLOCK_S) -> dict:
    """The best fp32 matmul GFLOP/s ``backend``'s framework reaches on ``device`` (cpu, gpu or tpu).

    Returns ``{"gflops", "per_size_gflops", "device", "dtype", "source": "<backend>",
    "method", "repeats"}``. Raises whatever the framework raises (no such device, out of memory).
    """
    spec = registry.spec(backend)
    if device not in spec.devices:
        raise ValueError(f"implementation {backend!r} does not run on {device!r} (its spec lists {', '.join(spec.devices)})")
    probe = spec.load("matmul_probe")  # NotOffered names the missing part
    sizes = sizes or (CPU_SIZES if device == "cpu" else ACCELERATOR_SIZES)
    per_size = {}
    for n in sizes:
        operation, block = probe(n, device)
        per_size[str(n)] = _best_rate(n, block, repeats, min_block_s)
    return {
        "gflops": max(per_size.values()),
        "per_size_gflops": per_size,
        "device": device,
        "dtype": "float32",
        "source": backend,
        "method": f"{operation}, float32, square n x n, 2n^3 FLOPs, no TF32, best block of {repeats}, "
                  "synchronised by a host read",
        "repeats": repeats,
    }
