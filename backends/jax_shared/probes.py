"""The JAX matmul probe for :mod:`mnist_bench.bench.perf.device_peak` (both Flax implementations): square float32 ``jax.jit(jnp.matmul)``
on the run's device, with the numerics the backend uses, synchronised by a host read."""

from __future__ import annotations

from typing import Callable

OPERATION = "jax.jit(jnp.matmul)"


def matmul_probe(n: int, device: str) -> tuple[str, Callable[[int], None]]:
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

    return OPERATION, block
