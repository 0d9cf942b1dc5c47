"""The tuned CPU path's two operations, as plain ``jax.numpy`` functions any Flax API can call.

XLA's CPU convolution weight-gradient is far slower than a GEMM of the same size
(docs/framework-bugs.md); written as one matrix product over image patches, the
convolution and its two transposes become plain GEMMs. Same parameters (an HWIO kernel
and a bias), same mathematics; only the summation order differs.
"""

from __future__ import annotations

import jax.numpy as jnp


def patch_conv(x, kernel, bias, dtype=None):
    """A 3x3 'VALID' convolution of NHWC ``x`` with an HWIO ``kernel``, as one patch matrix product.

    ``dtype``: compute in it (x, kernel and bias cast to it first), as a Flax layer's ``dtype`` does.
    """
    if dtype is not None:
        x, kernel, bias = (a.astype(dtype) for a in (x, kernel, bias))
    b, h, w, cin = x.shape
    features = kernel.shape[-1]
    # Columns in (kh, kw, in) order, matching kernel.reshape(9 * in, out).
    patches = jnp.concatenate([x[:, i:i + h - 2, j:j + w - 2, :] for i in range(3) for j in range(3)], axis=-1)
    out = patches.reshape(-1, 9 * cin) @ kernel.reshape(9 * cin, features)
    return out.reshape(b, h - 2, w - 2, features) + bias


def max_pool_2x2(x):
    """2x2/2 max-pooling as a reshape and a max: no select-and-scatter in the gradient."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
