"""Flax NNX data-parallel: the model of :mod:`mnist_bench.backends.flax_nnx_backend.model`, sharded over a device
mesh (:mod:`mnist_bench.backends.jax_shared.mesh`: replicated state, batches split in order).

The model's and optimiser's state (parameters, momentum, the dropout stream) is placed replicated and
each batch sharded; the step is the single-device one. ``nnx-jit`` calls it through ``nnx.jit`` with
those shardings as pytree prefixes of its arguments, ``split-merge`` through a plain ``jax.jit`` on
``nnx.split`` state. Either way the loss is the mean over the whole global batch, so XLA inserts the
all-reduce and every device applies the global gradient.
"""

from __future__ import annotations

from functools import partial
from typing import final

import jax
import numpy as np
import optax
from flax import nnx

from mnist_bench.backends.flax_nnx_backend import model as nnx_model
from mnist_bench.backends.flax_nnx_backend.backend import pure_params, to_canonical
from mnist_bench.backends.flax_nnx_backend.spec import SPEC
from mnist_bench.backends.jax_shared import runtime
from mnist_bench.backends.jax_shared.mesh import DataMesh, local
from mnist_bench.common import weights
from mnist_bench.common.interface import Backend


@final
class FlaxNnxMeshBackend(runtime.MeshReport, Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.data_parallel_modes
    data_parallel = True

    def _build(self) -> None:
        self.data = DataMesh(self.device, self.topology)
        runtime.use_full_float32(self.data.devices[0].platform)  # as the single-device backend
        init_key, dropout_key = jax.random.split(jax.random.PRNGKey(self.seed))
        # Built on this process's first device, as the single-device backend does, then replicated.
        with jax.default_device(self.data.mesh.local_devices[0]):
            self.model = nnx_model.CNN(self.recipe, rngs=nnx.Rngs(params=init_key, dropout=dropout_key))
        self._eval_model = nnx.view(self.model, deterministic=True)
        self.tx = optax.sgd(self.recipe.learning_rate, momentum=self.recipe.momentum)
        rep, shd = self.data.replicated, self.data.sharded
        self._grads = nnx.jit(nnx_model.loss_and_grads, in_shardings=(rep, shd, shd), out_shardings=rep)
        self._predict = nnx.jit(lambda model, x: model(x), in_shardings=(rep, rep), out_shardings=rep)
        self._replicate(self.model)
        self._new_optimizer()

    def _replicate(self, node) -> None:
        """Every array of ``node`` (a module or optimiser) as a replicated global array."""
        nnx.update(node, jax.tree.map(self._replicated, nnx.state(node)))

    def _replicated(self, array):
        if jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):  # the dropout stream's typed key
            return jax.random.wrap_key_data(self._replicated(jax.random.key_data(array)),
                                            impl=jax.random.key_impl(array))
        return self.data.put(np.asarray(jax.device_get(array)), self.data.replicated)

    def _new_optimizer(self) -> None:
        rep, shd = self.data.replicated, self.data.sharded
        self.optimizer = nnx.Optimizer(self.model, self.tx, wrt=nnx.Param)
        self._replicate(self.optimizer)
        self._state = None
        if self.mode == "nnx-jit":
            self._train_step = nnx.jit(nnx_model.train_step, in_shardings=(rep, rep, shd, shd), out_shardings=rep)
        else:
            graphdef, self._state = nnx.split((self.model, self.optimizer))
            self._train_step = jax.jit(partial(nnx_model.functional_step, graphdef), in_shardings=(rep, shd, shd),
                                       out_shardings=(rep, rep), donate_argnums=0)

    def _sync(self) -> None:
        if self._state is not None:
            nnx.update((self.model, self.optimizer), self._state)

    def load_weights(self, canonical: weights.Weights) -> None:
        # The functional modes donate their state: until synced, the objects hold deleted arrays (the
        # dropout stream's among them, which loading weights keeps).
        self._sync()
        params = nnx.state(self.model, nnx.Param)
        nnx.replace_by_pure_dict(params, pure_params(weights.check(canonical, self.recipe)))
        nnx.update(self.model, params)
        self._replicate(self.model)
        self._new_optimizer()

    def export_weights(self) -> weights.Weights:
        self._sync()
        return to_canonical(jax.tree.map(local, nnx.state(self.model, nnx.Param)))

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        put, images, labels = self.data.put, np.ascontiguousarray(x)[..., None], np.asarray(y, np.int32)
        losses = []
        for i in range(len(x)):
            xi, yi = put(images[i], self.data.sharded), put(labels[i], self.data.sharded)
            if self._state is None:
                losses.append(self._train_step(self.model, self.optimizer, xi, yi))
            else:
                self._state, loss = self._train_step(self._state, xi, yi)
                losses.append(loss)
        return np.array([local(loss) for loss in losses], np.float32)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        self._sync()
        loss, grads = self._grads(self._eval_model, self.data.put(np.ascontiguousarray(x)[..., None], self.data.sharded),
                                  self.data.put(np.asarray(y, np.int32), self.data.sharded))
        return float(local(loss)), to_canonical(jax.tree.map(local, grads))

    def _logits(self, x: np.ndarray) -> np.ndarray:
        self._sync()
        # Replicated: the last evaluation batch need not divide by the device count.
        return local(self._predict(self._eval_model, self.data.put(np.ascontiguousarray(x)[..., None],
                                                                   self.data.replicated)))
