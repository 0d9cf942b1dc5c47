"""Flax Linen data-parallel: the model of :mod:`mnist_bench.backends.flax_linen_backend.backend`, sharded over
a device mesh (:mod:`mnist_bench.backends.jax_shared.mesh`: replicated parameters, batches split in order).

The train step is the single-device one, jitted with those shardings: its loss is the mean over
the whole global batch, so XLA inserts the all-reduce and every device applies the global gradient.
"""

from __future__ import annotations

from functools import partial
from typing import final

import jax
import numpy as np
import optax

from mnist_bench.backends.flax_linen_backend.backend import CNN, loss_and_grads, params_from_canonical, to_canonical, train_step
from mnist_bench.backends.flax_linen_backend.spec import SPEC
from mnist_bench.backends.jax_shared import runtime
from mnist_bench.backends.jax_shared.mesh import DataMesh, local
from mnist_bench.common import weights
from mnist_bench.common.interface import Backend
from mnist_bench.common.model import IMAGE_SIZE


@final
class FlaxLinenMeshBackend(runtime.MeshReport, Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.data_parallel_modes
    data_parallel = True

    def _build(self) -> None:
        self.data = DataMesh(self.device, self.topology)
        runtime.use_full_float32(self.data.devices[0].platform)  # as the single-device backend
        r = self.recipe
        self.model = CNN(r.conv1_filters, r.conv2_filters, r.hidden, r.dropout1, r.dropout2)
        self.tx = optax.sgd(r.learning_rate, momentum=r.momentum)
        init_key, dropout_key = jax.random.split(jax.random.PRNGKey(self.seed))
        self._dropout_key = np.asarray(dropout_key)
        # Initialise on this process's first device, as the single-device backend does, then replicate:
        # compiling init for the whole mesh costs ~20 s across processes for weights shared init replaces.
        sample = np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)
        with jax.default_device(self.data.mesh.local_devices[0]):
            params = jax.device_get(self.model.init(init_key, sample, train=False)["params"])
        rep, shd = self.data.replicated, self.data.sharded
        self._init_opt = jax.jit(self.tx.init, out_shardings=rep)
        self._train_step = jax.jit(self._train_step_fn, in_shardings=(rep, rep, shd, shd, rep),
                                   out_shardings=(rep, rep, rep), donate_argnums=(0, 1))
        self._grads = jax.jit(partial(loss_and_grads, self.model), in_shardings=(rep, shd, shd), out_shardings=rep)
        self._predict = jax.jit(self._predict_fn, in_shardings=(rep, rep), out_shardings=rep)
        self._set_params(params)
        self._step = 0

    def _train_step_fn(self, params, opt_state, x, y, step):
        rng = jax.random.fold_in(self._dropout_key, step)
        return train_step(self.model, self.tx, params, opt_state, x, y, rng)

    def _predict_fn(self, params, x):
        return self.model.apply({"params": params}, x, train=False)

    def _set_params(self, params) -> None:
        self.params = self.data.replicate(params)
        self.opt_state = self._init_opt(self.params)

    def load_weights(self, canonical: weights.Weights) -> None:
        self._set_params(params_from_canonical(weights.check(canonical, self.recipe)))

    def export_weights(self) -> weights.Weights:
        return to_canonical(jax.tree.map(local, self.params))

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        put, images, labels = self.data.put, np.ascontiguousarray(x)[..., None], np.asarray(y, np.int32)
        losses = []
        for i in range(len(x)):
            step = put(np.int32(self._step), self.data.replicated)
            self.params, self.opt_state, loss = self._train_step(
                self.params, self.opt_state, put(images[i], self.data.sharded), put(labels[i], self.data.sharded), step)
            losses.append(loss)
            self._step += 1
        return np.array([local(loss) for loss in losses], np.float32)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        loss, grads = self._grads(self.params, self.data.put(np.ascontiguousarray(x)[..., None], self.data.sharded),
                                  self.data.put(np.asarray(y, np.int32), self.data.sharded))
        return float(local(loss)), to_canonical(jax.tree.map(local, grads))

    def _logits(self, x: np.ndarray) -> np.ndarray:
        # Replicated: the last evaluation batch need not divide by the device count.
        return local(self._predict(self.params, self.data.put(np.ascontiguousarray(x)[..., None], self.data.replicated)))
