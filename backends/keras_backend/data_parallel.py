"""Keras 3 data-parallel on JAX, with Keras's own engine: ``keras.distribution.DataParallel``.

As keras.io's distribution guide does it: ``keras.distribution.set_distribution(DataParallel(devices=...))``
before the model exists, then the same ``model.compile`` + ``model.fit`` as on one device. Keras then
creates every variable (weights, momentum, step count, seed state) replicated over a one-axis mesh,
lays each batch ``fit`` feeds out along its first axis, and jits the same train step with those
shardings; its loss is the mean over the global batch, so XLA inserts the all-reduce and every device
applies the global gradient. The global batch stays the recipe's: ``fit`` gets ``batch_size=64`` and
Keras cuts each batch into contiguous, in-order shards, device ``d`` holding rows
``[d*64/N, (d+1)*64/N)`` (devices numbered host by host, :func:`mnist_bench.common.parallel.shard`).

Several hosts: ``keras.distribution.initialize(coordinator, num_processes, process_id)``, which is
``jax.distributed.initialize`` (gloo collectives on CPU, set first). Keras shards a multi-process
``fit``'s input itself only for a ``tf.data.Dataset``; with arrays it asks for
``auto_shard_dataset=False`` and each process's own rows, which is what each host passes here (its
contiguous part of every batch, ``batch_size=64 / hosts``).

Keras's ``distribution`` exists on JAX only in Keras 3.15 (its PyTorch and NumPy backends have no
``distribution_lib``; TensorFlow's is a prototype marked "DO NOT USE"), so only ``keras-jax`` has this.
"""

from __future__ import annotations

import contextlib
from typing import final

import jax
import keras
import numpy as np

from mnist_bench.backends.jax_shared.mesh import mesh_devices
# Under another KERAS_BACKEND, SPEC (and so the class's name) is that framework's: registry.load_backend refuses it.
from mnist_bench.backends.keras_backend.backend import SPEC, KerasModelBackend, framework
from mnist_bench.common import parallel, weights


@final
class KerasDataParallelBackend(KerasModelBackend):
    modes = SPEC.data_parallel_modes
    data_parallel = True

    def _place(self) -> None:
        topology = self.topology
        if topology.hosts > 1 and not jax.distributed.is_initialized():
            if self.device == "cpu":
                jax.config.update("jax_cpu_collectives_implementation", "gloo")
            keras.distribution.initialize(job_addresses=topology.coordinator, num_processes=topology.hosts,
                                          process_id=topology.host_rank)
        framework.configure(self.threads, self.device)  # the device is there; full float32 on accelerators
        devices = [f"{d.platform}:{d.id}" for d in mesh_devices(self.device, topology)]
        # Multi-process, each host feeds fit its own rows (_fit_rows): Keras must not shard them again.
        self.distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        keras.distribution.set_distribution(self.distribution)

    def _scope(self):
        return contextlib.nullcontext()  # set_distribution placed everything

    def _fit_rows(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        hosts, rank = self.topology.hosts, self.topology.host_rank
        return parallel.shard(x, rank, hosts, axis=1), parallel.shard(y, rank, hosts, axis=1), x.shape[1] // hosts

    def _placed(self, array: np.ndarray, split: bool):
        """``array`` (every process holds all of it) split along its first axis as ``fit`` splits a batch, or replicated."""
        layout = (self.distribution.get_data_layout(array.shape) if split
                  else keras.distribution.TensorLayout([None] * array.ndim, self.distribution.device_mesh))
        return keras.distribution.distribute_tensor(array, layout)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        loss, grads = framework.loss_and_grads(self.model, self.loss_fn,
                                               self._placed(np.ascontiguousarray(x)[..., None], split=True),
                                               self._placed(np.asarray(y, np.int32), split=True), compiled=True)
        return loss, self._canonical(grads)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        # Replicated, as the Flax mesh backends: the last evaluation batch need not divide by the device count
        # (and a replicated call has no collective, so it may run op by op).
        return np.asarray(self.model(self._placed(np.ascontiguousarray(x)[..., None], split=False), training=False))

    def device_info(self) -> dict:
        mesh = self.distribution.device_mesh
        return {**framework.device_info(self.device), "count": int(mesh.devices.size),
                "engine": "keras.distribution.DataParallel", "mesh": dict(zip(mesh.axis_names, mesh.shape)),
                "processes": jax.process_count()}
