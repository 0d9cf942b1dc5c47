"""Flax NNX's profiler hook for :mod:`mnist_bench.bench.perf.profile`: JAX's profiler
(:mod:`mnist_bench.backends.jax_shared.profiling`) over the step each mode runs."""

from __future__ import annotations

import numpy as np


def profile(mode: str, recipe, xs, ys, steps: int) -> list[tuple[str, float]]:
    """Per-operation ms per step: ``steps`` steps compiled on the first half of xs/ys, profiled on the second."""
    from mnist_bench.backends.flax_nnx_backend.backend import FlaxNnxBackend
    from mnist_bench.backends.jax_shared.profiling import profile_backend

    backend = FlaxNnxBackend(recipe, device="cpu", mode=mode, seed=0)
    return profile_backend(backend, xs, ys, steps, _hlo(backend, xs[:steps], ys[:steps]))


def _hlo(backend, xs, ys) -> str:
    """The compiled HLO of the step the mode runs (``lower`` traces; it runs nothing and donates nothing)."""
    import jax.numpy as jnp

    images, labels = jnp.asarray(xs[..., None]), jnp.asarray(ys.astype(np.int32))
    if backend.mode == "tuned":
        lowered = backend._functional.lower(backend._state, images, labels)
    elif backend.mode == "split-merge":
        lowered = backend._functional.lower(backend._state, images[0], labels[0])
    else:  # nnx-jit and cached-partial run the same nnx.jit step
        from flax import nnx

        from mnist_bench.backends.flax_nnx_backend.model import train_step

        lowered = nnx.jit(train_step).lower(backend.model, backend.optimizer, images[0], labels[0])
    return lowered.compile().as_text()
