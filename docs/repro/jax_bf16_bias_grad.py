"""JAX: the gradient of a bias added in bfloat16 is summed in bfloat16 (XLA's CPU reduce rounds its accumulator
after every add), while jnp.sum of the same values upcasts to float32 and rounds once.

    python docs/repro/jax_bf16_bias_grad.py

prints, per batch-and-position count, the relative error (max over channels, against the exact sum) of the
bias gradient JAX computes, and of the same sum rounded to bfloat16 once.
"""

import jax
import jax.numpy as jnp
import numpy as np

rng = np.random.default_rng(0)
print("jax", jax.__version__, jax.devices()[0].platform)
for rows in (64, 64 * 24 * 24, 64 * 26 * 26):  # a dense layer's batch; conv2's and conv1's positions in a batch
    cotangent = jnp.asarray(rng.normal(0.01, 0.02, size=(rows, 64)), jnp.bfloat16)
    exact = np.asarray(cotangent, np.float64).sum(axis=0)
    _, vjp = jax.vjp(lambda bias: jnp.zeros((rows, 64), jnp.bfloat16) + bias, jnp.zeros(64, jnp.bfloat16))
    bias_grad = np.asarray(jax.jit(lambda c: vjp(c)[0])(cotangent), np.float64)
    once = np.asarray(jnp.asarray(exact, jnp.bfloat16), np.float64)
    scale = np.max(np.abs(exact))
    print(f"{rows:6d} rows: bias gradient {np.max(np.abs(bias_grad - exact)) / scale:.2e}, "
          f"rounded once {np.max(np.abs(once - exact)) / scale:.2e}")
