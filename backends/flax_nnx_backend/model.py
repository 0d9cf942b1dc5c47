"""The network as an ``nnx.Module`` and its train step, written as Flax's NNX MNIST example writes them.

``nnx.Conv``/``nnx.Linear`` layers built eagerly from an ``nnx.Rngs``, ``nnx.Dropout`` drawing
its masks from the ``dropout`` stream of that ``Rngs`` (the stream's count is state, so every
mode draws the same masks), an ``nnx.Optimizer(model, optax.sgd(lr, momentum), wrt=nnx.Param)``
and a step using ``nnx.value_and_grad`` and ``optimizer.update(model, grads)``. NNX modules are
channels-last with (kh, kw, in, out) kernels, (in, out) dense kernels and 'SAME' padding by
default (the model asks for 'VALID'), so they speak the canonical layout as Linen does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mnist_bench.backends.jax_shared.cpu_ops import max_pool_2x2, patch_conv
from mnist_bench.common.model import KERNEL_SIZE, NUM_CLASSES, POOLED_SIZE
from mnist_bench.common.recipe import Recipe

LAYERS = ("conv1", "conv2", "dense1", "dense2")


class CNN(nnx.Module):
    def __init__(self, recipe: Recipe, *, rngs: nnx.Rngs, matmul_convs: bool = False, dtype=jnp.float32):
        # dtype: every layer's compute dtype (bfloat16 for bf16); param_dtype stays float32.
        k = (KERNEL_SIZE, KERNEL_SIZE)
        self.conv1 = nnx.Conv(1, recipe.conv1_filters, k, padding="VALID", dtype=dtype, rngs=rngs)
        self.conv2 = nnx.Conv(recipe.conv1_filters, recipe.conv2_filters, k, padding="VALID", dtype=dtype, rngs=rngs)
        self.dropout1 = nnx.Dropout(recipe.dropout1, rngs=rngs)
        self.dense1 = nnx.Linear(POOLED_SIZE * POOLED_SIZE * recipe.conv2_filters, recipe.hidden, dtype=dtype,
                                 rngs=rngs)
        self.dropout2 = nnx.Dropout(recipe.dropout2, rngs=rngs)
        self.dense2 = nnx.Linear(recipe.hidden, NUM_CLASSES, dtype=dtype, rngs=rngs)
        # The tuned CPU path: the same parameters, read by a patch-matmul convolution (jax_shared/cpu_ops.py).
        self.matmul_convs = matmul_convs

    def __call__(self, x):
        if self.matmul_convs:
            dtype = self.conv1.dtype  # the layers' compute dtype, as nnx.Conv would apply it
            x = nnx.relu(patch_conv(x, self.conv1.kernel[...], self.conv1.bias[...], dtype))
            x = nnx.relu(patch_conv(x, self.conv2.kernel[...], self.conv2.bias[...], dtype))
            x = max_pool_2x2(x)
        else:
            x = nnx.relu(self.conv1(x))
            x = nnx.relu(self.conv2(x))
            x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        x = self.dropout1(x)
        x = x.reshape((x.shape[0], -1))
        x = nnx.relu(self.dense1(x))
        x = self.dropout2(x)
        return self.dense2(x)


def loss_fn(model: CNN, x, y):
    """Cross-entropy on float32 logits, mean over the batch."""
    return optax.softmax_cross_entropy_with_integer_labels(model(x).astype(jnp.float32), y).mean()


def logits(model: CNN, x):
    """Logits as float32, whatever the layers computed in."""
    return model(x).astype(jnp.float32)


def train_step(model: CNN, optimizer: nnx.Optimizer, x, y):
    """One SGD step in place: the body of the example's ``@nnx.jit`` train step."""
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads)
    return loss


def loss_and_grads(model: CNN, x, y):
    return nnx.value_and_grad(loss_fn)(model, x, y)


def functional_step(graphdef, state, x, y):
    """The performance guide's functional step: merge, step, return the new state (traced once by jax.jit)."""
    model, optimizer = nnx.merge(graphdef, state)
    loss = train_step(model, optimizer, x, y)
    return nnx.state((model, optimizer)), loss


def functional_chunk(graphdef, state, xs, ys):
    """Every step of a chunk in one ``lax.scan``: one dispatch per chunk."""
    return jax.lax.scan(lambda s, batch: functional_step(graphdef, s, *batch), state, (xs, ys))


def predict(graphdef, model_state, x):
    return logits(nnx.merge(graphdef, model_state), x)
