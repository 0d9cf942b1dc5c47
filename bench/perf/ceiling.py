"""This model's own GEMMs, timed with NumPy: a framework-neutral ceiling for a training step.

Every FLOP that :mod:`mnist_bench.common.flops` counts is a matrix product once convolutions
are written over image patches (im2col). ``python -m mnist_bench.bench.perf.ceiling`` times each of
those products at its real shape for one batch -- forward, weight gradient and
input gradient of every layer (conv1 has no input gradient) -- with NumPy's BLAS,
pinned and threaded as the workers are, best of several repeats. Their sum is
what a step would take if it did nothing but its GEMMs as fast as this machine's
BLAS runs them: no patch copies, no element-wise work, no framework. That is the
ceiling a framework's fraction of peak should be read against: the square-matmul
peak (:mod:`mnist_bench.common.peak`) is not reachable by products with K = 9 or N = 10.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from mnist_bench.bench import options
from mnist_bench.common import flops


def gemm_shapes(batch: int, conv1: int = 32, conv2: int = 64, hidden: int = 128) -> dict[str, tuple[int, int, int]]:
    """(M, K, N) of every matrix product in one training step, by name."""
    c1, c2, p = flops.CONV1_OUT, flops.CONV2_OUT, flops.POOLED_SIZE
    rows1, rows2, k2, features = batch * c1 * c1, batch * c2 * c2, 9 * conv1, p * p * conv2
    return {
        "conv1 forward": (rows1, 9, conv1),
        "conv1 weight grad": (9, rows1, conv1),
        "conv2 forward": (rows2, k2, conv2),
        "conv2 weight grad": (k2, rows2, conv2),
        "conv2 input grad": (rows2, conv2, k2),
        "dense1 forward": (batch, features, hidden),
        "dense1 weight grad": (features, batch, hidden),
        "dense1 input grad": (batch, hidden, features),
        "dense2 forward": (batch, hidden, flops.NUM_CLASSES),
        "dense2 weight grad": (hidden, batch, flops.NUM_CLASSES),
        "dense2 input grad": (batch, flops.NUM_CLASSES, hidden),
    }


def measure(batch: int = 64, repeats: int = 7) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    rows = {}
    for name, (m, k, n) in gemm_shapes(batch).items():
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        rows[name] = {"shape": [m, k, n], "ms": best * 1e3, "gflops": 2 * m * k * n / best / 1e9}
    step_s = sum(r["ms"] for r in rows.values()) / 1e3
    step_flops = sum(2 * m * k * n for m, k, n in gemm_shapes(batch).values())
    assert step_flops == flops.train_flops() * batch  # the products are exactly what mnist_bench.common.flops counts
    return {"batch": batch, "gemms": rows, "step_ms": step_s * 1e3, "gflops": step_flops / step_s / 1e9,
            "ceiling_samples_per_s": batch / step_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.perf.ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=options.thread_count, default=options.all_cpus())
    parser.add_argument("--batch", type=options.positive_int, default=64)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    from mnist_bench.common import peak

    # As the peak probe does: BLAS reads its thread count when NumPy loads, so set it first.
    os.sched_setaffinity(0, peak.pinned_cpus(args.threads))
    os.environ.update(peak.blas_env(args.threads))
    result = measure(args.batch)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for name, row in result["gemms"].items():
        m, k, n = row["shape"]
        print(f"{name:19s} {m:>7} x {k:>6} x {n:>5}  {row['ms']:8.2f} ms  {row['gflops']:6.1f} GFLOP/s")
    print(f"one step of GEMMs only: {result['step_ms']:.1f} ms = {result['gflops']:.1f} GFLOP/s = "
          f"{result['ceiling_samples_per_s']:,.0f} samples/s ({args.threads} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
