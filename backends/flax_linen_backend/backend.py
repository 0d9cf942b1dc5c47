"""JAX + Flax (Linen) + Optax, shaped like Flax's own ``examples/mnist``.

A ``flax.linen`` module, an ``optax.sgd`` optimiser and a pure train step
``(params, opt_state, batch, rng) -> (params, opt_state, loss)``. Modes:
``compiled`` (the default, ``jax.jit`` with the parameter and optimiser buffers
donated), ``eager`` (the same functions, op by op) and ``tuned`` (a whole chunk
of steps in one jitted ``lax.scan``, with the convolutions as patch matrix
products on the CPU). Flax is channels-last
with (kh, kw, in, out) kernels, so it already speaks the canonical layout.
Flax's ``nn.Conv`` pads 'SAME' by default; the model asks for 'VALID' as the
other frameworks do.

Precisions the Flax way: every layer's ``dtype`` is the compute dtype (bfloat16 for bf16) and its
``param_dtype`` stays float32; the loss is taken from the logits cast to float32. tf32 is JAX's
default matmul precision "tensorfloat32" on a GPU. No fp16: Flax and Optax have no loss scaling.
"""

from __future__ import annotations

from typing import Any, final

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnist_bench.common import weights
from mnist_bench.common.interface import Backend
from mnist_bench.backends.jax_shared import runtime
from mnist_bench.backends.jax_shared.cpu_ops import max_pool_2x2, patch_conv
from mnist_bench.backends.flax_linen_backend.spec import SPEC
from mnist_bench.common.model import IMAGE_SIZE, NUM_CLASSES

LAYERS = ("conv1", "conv2", "dense1", "dense2")


class PatchConv(nn.Module):
    """A 3x3 'VALID' convolution as one patch matrix product (jax_shared/cpu_ops.py says why).

    The same parameters as ``nn.Conv`` (an HWIO ``kernel`` and a ``bias``, the same
    initialisers) and the same mathematics; only the summation order differs.
    """

    features: int
    dtype: Any = jnp.float32  # the compute dtype, as nn.Conv's; parameters stay float32

    @nn.compact
    def __call__(self, x):
        cin = x.shape[-1]
        kernel = self.param("kernel", nn.linear.default_kernel_init, (3, 3, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return patch_conv(x, kernel, bias, self.dtype)


class CNN(nn.Module):
    conv1: int
    conv2: int
    hidden: int
    dropout1: float
    dropout2: float
    matmul_convs: bool = False  # the tuned CPU path; same parameters, same mathematics
    dtype: Any = jnp.float32  # every layer's compute dtype (param_dtype stays float32)

    @nn.compact
    def __call__(self, x, train: bool):
        if self.matmul_convs:
            x = nn.relu(PatchConv(self.conv1, self.dtype, name="conv1")(x))
            x = nn.relu(PatchConv(self.conv2, self.dtype, name="conv2")(x))
            x = max_pool_2x2(x)
        else:
            x = nn.relu(nn.Conv(self.conv1, (3, 3), padding="VALID", dtype=self.dtype, name="conv1")(x))
            x = nn.relu(nn.Conv(self.conv2, (3, 3), padding="VALID", dtype=self.dtype, name="conv2")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = nn.Dropout(self.dropout1, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="dense1")(x))
        x = nn.Dropout(self.dropout2, deterministic=not train)(x)
        return nn.Dense(NUM_CLASSES, dtype=self.dtype, name="dense2")(x)


def loss(model: CNN, params, x, y, train: bool, rng):
    """Cross-entropy on float32 logits, mean over the batch (the whole global batch when it is sharded)."""
    logits = model.apply({"params": params}, x, train=train, rngs={"dropout": rng} if train else None)
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y).mean()


def train_step(model: CNN, tx, params, opt_state, x, y, rng):
    value, grads = jax.value_and_grad(lambda p: loss(model, p, x, y, True, rng))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value


def loss_and_grads(model: CNN, params, x, y):
    return jax.value_and_grad(lambda p: loss(model, p, x, y, False, None))(params)


def params_from_canonical(w: weights.Weights) -> dict:
    return {layer: {"kernel": jnp.asarray(w[f"{layer}/kernel"]), "bias": jnp.asarray(w[f"{layer}/bias"])}
            for layer in LAYERS}


def to_canonical(tree) -> weights.Weights:
    """A host-side parameter (or gradient) tree -> canonical names."""
    flat = flax.traverse_util.flatten_dict(tree, sep="/")
    return {name: np.asarray(value) for name, value in flat.items()}


@final
class FlaxLinenBackend(runtime.OneDeviceReport, Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.modes
    precisions = SPEC.precisions

    def _build(self) -> None:
        r = self.recipe
        self._device = runtime.device(self.device)
        runtime.use_full_float32(self._device.platform, self.precision.tf32)
        tuned = self.mode == "tuned"
        # Patch-matmul convolutions pay off on the CPU; on GPUs and TPUs the
        # framework's convolutions (cuDNN, the TPU compiler) are the fast path.
        # Inference alone is fastest with XLA's own convolutions (its slow kernel is the
        # weight gradient): the same parameters, so every mode evaluates with them.
        self._eval_model = CNN(r.conv1_filters, r.conv2_filters, r.hidden, r.dropout1, r.dropout2,
                               dtype=jnp.dtype(self.precision.compute_dtype))
        self.model = self._eval_model.clone(matmul_convs=tuned and self._device.platform == "cpu")
        self.tx = optax.sgd(r.learning_rate, momentum=r.momentum)
        init_key, self._dropout_key = jax.random.split(jax.random.PRNGKey(self.seed))
        sample = jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), jnp.float32)
        with jax.default_device(self._device):
            params = self.model.init(init_key, sample, train=False)["params"]
        self._set_params(params)
        self._compute_dtype = runtime.compute_dtype(self._predict_fn, params, sample)
        self._step = 0
        if tuned:
            # A whole chunk of steps is one compiled loop: one dispatch per chunk.
            self._train_chunk = jax.jit(self._train_chunk_fn, donate_argnums=(0, 1))
        if self.mode in ("compiled", "tuned"):
            self._train_step = jax.jit(self._train_step_fn, donate_argnums=(0, 1))
            self._grads = jax.jit(self._grads_fn)
            self._predict = jax.jit(self._logits_fn)
        else:
            self._train_step, self._grads, self._predict = self._train_step_fn, self._grads_fn, self._logits_fn

    def _set_params(self, params) -> None:
        self.params = jax.device_put(params, self._device)
        self.opt_state = jax.device_put(self.tx.init(self.params), self._device)

    # Pure functions: traced once by jax.jit in the compiled mode.
    def _train_step_fn(self, params, opt_state, x, y, rng):
        return train_step(self.model, self.tx, params, opt_state, x, y, rng)

    def _train_chunk_fn(self, params, opt_state, xs, ys, first_step):
        def step(carry, batch):
            params, opt_state, i = carry
            rng = jax.random.fold_in(self._dropout_key, i)  # the same key per step as the other modes
            params, opt_state, loss = self._train_step_fn(params, opt_state, *batch, rng)
            return (params, opt_state, i + 1), loss

        (params, opt_state, _), losses = jax.lax.scan(step, (params, opt_state, first_step), (xs, ys))
        return params, opt_state, losses

    def _grads_fn(self, params, x, y):
        return loss_and_grads(self.model, params, x, y)

    def _predict_fn(self, params, x):
        return self._eval_model.apply({"params": params}, x, train=False)

    def _logits_fn(self, params, x):
        return self._predict_fn(params, x).astype(jnp.float32)

    def load_weights(self, canonical: weights.Weights) -> None:
        self._set_params(params_from_canonical(weights.check(canonical, self.recipe)))

    def _canonical(self, tree) -> weights.Weights:
        return to_canonical(jax.device_get(tree))

    def export_weights(self) -> weights.Weights:
        return self._canonical(self.params)

    def _put(self, array: np.ndarray):
        return jax.device_put(array, self._device)

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        images, labels = self._put(np.ascontiguousarray(x)[..., None]), self._put(np.asarray(y, np.int32))
        if self.mode == "tuned":
            self.params, self.opt_state, losses = self._train_chunk(
                self.params, self.opt_state, images, labels, jnp.uint32(self._step))
            self._step += len(x)
            return np.asarray(losses)
        losses = []
        for i in range(len(x)):
            rng = jax.random.fold_in(self._dropout_key, self._step)
            self.params, self.opt_state, loss = self._train_step(self.params, self.opt_state, images[i], labels[i], rng)
            losses.append(loss)
            self._step += 1
        return np.asarray(jnp.stack(losses))

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        loss, grads = self._grads(self.params, self._put(np.ascontiguousarray(x)[..., None]), self._put(np.asarray(y, np.int32)))
        return float(loss), self._canonical(grads)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._predict(self.params, self._put(np.ascontiguousarray(x)[..., None])))
