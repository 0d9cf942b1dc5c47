"""Flax Linen's profiler hook for :mod:`mnist_bench.bench.perf.profile`: JAX's profiler
(:mod:`mnist_bench.backends.jax_shared.profiling`) over this implementation's jitted step."""

from __future__ import annotations

import numpy as np


def profile(mode: str, recipe, xs, ys, steps: int) -> list[tuple[str, float]]:
    """Per-operation ms per step: ``steps`` steps compiled on the first half of xs/ys, profiled on the second."""
    from mnist_bench.backends.flax_linen_backend.backend import FlaxLinenBackend
    from mnist_bench.backends.jax_shared.profiling import profile_backend

    backend = FlaxLinenBackend(recipe, device="cpu", mode=mode, seed=0)
    return profile_backend(backend, xs, ys, steps, _jax_hlo(backend, xs[:steps], ys[:steps]))


def _jax_hlo(backend, xs, ys) -> str:
    import jax
    import jax.numpy as jnp

    images, labels = jnp.asarray(xs[..., None]), jnp.asarray(ys.astype(np.int32))
    if backend.mode == "tuned":
        fn, args = backend._train_chunk_fn, (backend.params, backend.opt_state, images, labels, jnp.uint32(0))
    else:
        fn, args = backend._train_step_fn, (backend.params, backend.opt_state, images[0], labels[0],
                                            jax.random.PRNGKey(0))
    return jax.jit(fn).lower(*args).compile().as_text()
