"""The matmul probe: JAX's, whichever Flax API the model uses (the spec names parts inside its own folder)."""

from mnist_bench.backends.jax_shared.probes import OPERATION, matmul_probe

__all__ = ["OPERATION", "matmul_probe"]
