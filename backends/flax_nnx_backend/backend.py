"""JAX + Flax NNX + Optax, shaped like Flax's own NNX ``examples/mnist``.

Modes, one model and one step (:mod:`.model`), four ways of calling it:

* ``nnx-jit`` (the default): ``@nnx.jit`` over ``train_step(model, optimizer, x, y)``, as the
  example and every NNX tutorial write it. On **every call** ``nnx.jit`` walks the model and
  optimizer object graphs in Python (``nnx.split`` on the way in, ``nnx.update`` on the way
  out) to find their state and write it back, before and after XLA runs the compiled step.
  Flax's performance guide says this "mostly affects small to medium models", which ours is.
* ``cached-partial``: ``nnx.cached_partial(nnx.jit(train_step), model, optimizer)``, the guide's
  first remedy: the graph is walked once and cached; each call only swaps array leaves.
* ``split-merge``: the guide's functional loop: ``nnx.split`` once, then a plain ``jax.jit``
  step that ``nnx.merge``s inside the trace and returns the new state; the Python graph walk
  happens only while tracing. The model objects are brought up to date (``nnx.update``) only
  when weights, logits or gradients are read.
* ``tuned``: ``split-merge`` with a whole chunk of steps in one jitted ``lax.scan`` and, on the
  CPU, the patch-matmul convolutions of the Linen implementation's tuned mode (same parameters).

Every mode evaluates with XLA's own convolutions (the slow kernel is only the weight gradient).
"""

from __future__ import annotations

from functools import partial
from typing import final

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mnist_bench.backends.flax_nnx_backend import model as nnx_model
from mnist_bench.backends.flax_nnx_backend.spec import SPEC
from mnist_bench.backends.jax_shared import runtime
from mnist_bench.common import weights
from mnist_bench.common.interface import Backend
from mnist_bench.common.model import IMAGE_SIZE

def to_canonical(state) -> weights.Weights:
    """An ``nnx.State`` of parameters (or their gradients) -> canonical names on the host."""
    flat = flax.traverse_util.flatten_dict(nnx.to_pure_dict(state), sep="/")
    return {name: np.asarray(value) for name, value in flat.items()}


def pure_params(w: weights.Weights) -> dict:
    return {layer: {"kernel": w[f"{layer}/kernel"], "bias": w[f"{layer}/bias"]} for layer in nnx_model.LAYERS}


@final
class FlaxNnxBackend(runtime.OneDeviceReport, Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.modes
    precisions = SPEC.precisions

    def _build(self) -> None:
        r = self.recipe
        self._device = runtime.device(self.device)
        runtime.use_full_float32(self._device.platform, self.precision.tf32)
        init_key, dropout_key = jax.random.split(jax.random.PRNGKey(self.seed))
        with jax.default_device(self._device):
            self.model = nnx_model.CNN(r, rngs=nnx.Rngs(params=init_key, dropout=dropout_key),
                                       matmul_convs=self.mode == "tuned" and self._device.platform == "cpu",
                                       dtype=jnp.dtype(self.precision.compute_dtype))
        # Views share the model's Variables. Gradients: dropout off, the training step's own convolutions;
        # inference: dropout off, XLA's convolutions.
        self._grads_model = nnx.view(self.model, deterministic=True)
        self._eval_model = nnx.view(self.model, deterministic=True)
        self._eval_model.matmul_convs = False
        self.tx = optax.sgd(r.learning_rate, momentum=r.momentum)
        self._grads = nnx.jit(nnx_model.loss_and_grads)
        self._predict = nnx.jit(nnx_model.logits)
        # What the last layer computes in, from JAX's tracing of the model itself (nothing runs).
        graphdef, state = nnx.split(self._eval_model)
        self._compute_dtype = runtime.compute_dtype(lambda s, x: nnx.merge(graphdef, s)(x), state,
                                                    jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), jnp.float32))
        self._new_optimizer()

    def _new_optimizer(self) -> None:
        """A fresh optimiser (zero momentum) for the model's current parameters, and the step that uses it."""
        with jax.default_device(self._device):
            self.optimizer = nnx.Optimizer(self.model, self.tx, wrt=nnx.Param)
        self._state = None  # the functional modes' (model, optimizer) state, while it is ahead of the objects
        if self.mode == "nnx-jit":
            self._train_step = nnx.jit(nnx_model.train_step)
        elif self.mode == "cached-partial":
            self._train_step = nnx.cached_partial(nnx.jit(nnx_model.train_step), self.model, self.optimizer)
        else:
            graphdef, self._state = nnx.split((self.model, self.optimizer))
            eval_graphdef, _ = nnx.split(self._eval_model)
            # Donated: the old state's buffers are reused for the new one, as the Linen implementation does.
            chunk = nnx_model.functional_chunk if self.mode == "tuned" else nnx_model.functional_step
            self._functional = jax.jit(partial(chunk, graphdef), donate_argnums=0)
            self._functional_predict = jax.jit(partial(nnx_model.predict, eval_graphdef))

    def _sync(self) -> None:
        """Bring the model objects up to the functional state (one graph walk, only when they are read)."""
        if self._state is not None:
            nnx.update((self.model, self.optimizer), self._state)

    def load_weights(self, canonical: weights.Weights) -> None:
        # The functional modes donate their state: until synced, the objects hold deleted arrays (the
        # dropout stream's among them, which loading weights keeps).
        self._sync()
        params = nnx.state(self.model, nnx.Param)
        pure = jax.device_put(pure_params(weights.check(canonical, self.recipe)), self._device)
        nnx.replace_by_pure_dict(params, pure)
        nnx.update(self.model, params)
        self._new_optimizer()

    def export_weights(self) -> weights.Weights:
        self._sync()
        return to_canonical(jax.device_get(nnx.state(self.model, nnx.Param)))

    def _put(self, array: np.ndarray):
        return jax.device_put(array, self._device)

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        images, labels = self._put(np.ascontiguousarray(x)[..., None]), self._put(np.asarray(y, np.int32))
        if self.mode == "tuned":
            self._state, losses = self._functional(self._state, images, labels)
            return np.asarray(losses)
        losses = []
        for i in range(len(x)):
            if self.mode == "split-merge":
                self._state, loss = self._functional(self._state, images[i], labels[i])
            elif self.mode == "cached-partial":
                loss = self._train_step(images[i], labels[i])
            else:
                loss = self._train_step(self.model, self.optimizer, images[i], labels[i])
            losses.append(loss)
        return np.asarray(jnp.stack(losses))

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        self._sync()
        loss, grads = self._grads(self._grads_model, self._put(np.ascontiguousarray(x)[..., None]),
                                  self._put(np.asarray(y, np.int32)))
        return float(loss), to_canonical(jax.device_get(grads))

    def _logits(self, x: np.ndarray) -> np.ndarray:
        images = self._put(np.ascontiguousarray(x)[..., None])
        if self._state is not None:
            return np.asarray(self._functional_predict(self._state[0], images))
        return np.asarray(self._predict(self._eval_model, images))
