"""The fp32 matmul peak of a device as one framework reaches it, measured in that framework's process.

On a GPU the NumPy probe (:mod:`mnist_bench.common.peak`) measures the wrong chip, so the run's
own framework times square float32 matmuls on the run's device, with the same
numerics the backends use (no TF32, JAX at ``highest`` precision off-CPU). Each
timing covers enough matmuls to last ``min_block_s`` and ends with the result
brought to the host, so the device is synchronised inside the clock; the best
block of ``repeats`` wins. On a CPU it is a cross-check of the framework's BLAS
against NumPy's.

Each framework is imported inside its function, so importing this module imports none.
"""

from __future__ import annotations

import time
from typing import Callable

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


def _torch_block(n: int, device: str) -> Callable[[int], None]:
    import torch

    dev = torch.device("cuda", 0) if device == "gpu" else torch.device("cpu")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=generator, dtype=torch.float32).to(dev)
    b = torch.randn(n, n, generator=generator, dtype=torch.float32).to(dev)
    out = torch.empty(n, n, dtype=torch.float32, device=dev)

    def block(k: int) -> None:
        for _ in range(k):
            torch.matmul(a, b, out=out)
        out[0, 0].item()  # to the host: synchronises the device

    return block


def _tensorflow_block(n: int, device: str) -> Callable[[int], None]:
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)
    name = "/GPU:0" if device == "gpu" else "/CPU:0"
    with tf.device(name):
        a = tf.random.stateless_normal((n, n), seed=(0, 0), dtype=tf.float32)
        b = tf.random.stateless_normal((n, n), seed=(0, 1), dtype=tf.float32)

    def block(k: int) -> None:
        with tf.device(name):
            out = None
            for _ in range(k):
                out = tf.linalg.matmul(a, b)
            out[0, 0].numpy()

    return block


def _jax_block(n: int, device: str) -> Callable[[int], None]:
    import jax
    import jax.numpy as jnp

    dev = jax.devices("cpu" if device == "cpu" else device)[0]
    precision = None if dev.platform == "cpu" else jax.lax.Precision.HIGHEST
    matmul = jax.jit(lambda x, y: jnp.matmul(x, y, precision=precision))
    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    a = jax.device_put(jax.random.normal(key_a, (n, n), jnp.float32), dev)
    b = jax.device_put(jax.random.normal(key_b, (n, n), jnp.float32), dev)

    def block(k: int) -> None:
        out = None
        for _ in range(k):
            out = matmul(a, b)
        out.block_until_ready()

    return block


BLOCKS = {"torch": _torch_block, "tensorflow": _tensorflow_block, "jax": _jax_block}
OPERATIONS = {"torch": "torch.matmul", "tensorflow": "tf.linalg.matmul", "jax": "jax.jit(jnp.matmul)"}


def measure(backend: str, device: str, sizes: tuple[int, ...] | None = None, repeats: int = DEFAULT_REPEATS,
            min_block_s: float = MIN_BLOCK_S) -> dict:
    """The best fp32 matmul GFLOP/s ``backend``'s framework reaches on ``device`` (cpu, gpu or tpu).

    Returns ``{"gflops", "per_size_gflops", "device", "dtype", "source": "<backend>",
    "method", "repeats"}``. Raises whatever the framework raises (no such device, out of memory).
    """
    if backend not in BLOCKS:
        raise ValueError(f"no matmul probe for backend {backend!r}; choose from {', '.join(BLOCKS)}")
    if device == "tpu" and backend != "jax":
        raise ValueError(f"backend {backend!r} has no TPU matmul probe")
    sizes = sizes or (CPU_SIZES if device == "cpu" else ACCELERATOR_SIZES)
    per_size = {str(n): _best_rate(n, BLOCKS[backend](n, device), repeats, min_block_s) for n in sizes}
    return {
        "gflops": max(per_size.values()),
        "per_size_gflops": per_size,
        "device": device,
        "dtype": "float32",
        "source": backend,
        "method": f"{OPERATIONS[backend]}, float32, square n x n, 2n^3 FLOPs, no TF32, best block of {repeats}, "
                  "synchronised by a host read",
        "repeats": repeats,
    }
