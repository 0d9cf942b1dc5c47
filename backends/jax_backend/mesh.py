"""JAX data-parallel: the Flax model of :mod:`mnist_bench.backends.jax_backend.backend`, sharded over a device mesh.

A one-axis :class:`jax.sharding.Mesh` (``"data"``) holds ``devices`` devices per
process; across hosts, ``jax.distributed.initialize(coordinator, num_processes,
process_id)`` joins the processes first (on CPU with gloo collectives), and the
mesh spans every process's devices. Parameters and optimiser state are
replicated; each batch is split along its first axis (``P("data")``), device
``d`` holding the ``d``-th contiguous shard. The train step is the single-device
one, jitted with those shardings: its loss is the mean over the whole global
batch, so XLA inserts the all-reduce and every device applies the global
gradient. CPU devices come from ``XLA_FLAGS=--xla_force_host_platform_device_count=N``,
which the worker sets before JAX is imported.
"""

from __future__ import annotations

from functools import partial
from typing import final

import flax
import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mnist_bench.backends.jax_backend.backend import (
    CNN, loss_and_grads, numerics, params_from_canonical, to_canonical, train_step)
from mnist_bench.common import parallel, weights
from mnist_bench.common.interface import Backend, DeviceUnavailable
from mnist_bench.backends.jax_backend.spec import SPEC
from mnist_bench.common.model import IMAGE_SIZE


def _mesh_devices(kind: str, topology: parallel.Topology) -> list:
    try:
        found = jax.devices(kind)
    except RuntimeError:
        seen = ", ".join(f"{d.platform}:{d.id}" for d in jax.devices()) or "none"
        raise DeviceUnavailable(f"JAX {jax.__version__} sees no {kind!r} device; devices found: {seen}") from None
    chosen = []
    for process in range(jax.process_count()):
        mine = sorted((d for d in found if d.process_index == process), key=lambda d: d.id)
        if len(mine) < topology.devices:
            hint = (" (on CPU the worker sets XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts; "
                    "set it yourself when you build this backend directly)") if kind == "cpu" else ""
            raise DeviceUnavailable(f"--devices {topology.devices} asks for {topology.devices} {kind} devices per host "
                                    f"but JAX sees {len(mine)} on process {process}{hint}")
        chosen += mine[:topology.devices]
    return chosen


def _local(array: jax.Array) -> np.ndarray:
    """A replicated array's value, from this process's first copy (works across hosts)."""
    return np.asarray(array.addressable_data(0))


@final
class JaxMeshBackend(Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.data_parallel_modes
    data_parallel = True

    def _build(self) -> None:
        t = self.topology
        if t.hosts > 1 and not jax.distributed.is_initialized():
            if self.device == "cpu":
                jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(coordinator_address=t.coordinator, num_processes=t.hosts, process_id=t.host_rank)
        devices = _mesh_devices(self.device, t)
        if self.device != "cpu":
            jax.config.update("jax_default_matmul_precision", "highest")  # as the single-device backend
        self.mesh = Mesh(np.array(devices), ("data",))
        self._replicated = NamedSharding(self.mesh, P())
        self._sharded = NamedSharding(self.mesh, P("data"))
        r = self.recipe
        self.model = CNN(r.conv1_filters, r.conv2_filters, r.hidden, r.dropout1, r.dropout2)
        self.tx = optax.sgd(r.learning_rate, momentum=r.momentum)
        init_key, dropout_key = jax.random.split(jax.random.PRNGKey(self.seed))
        self._dropout_key = np.asarray(dropout_key)
        # Initialise on this process's first device, as the single-device backend does, then replicate:
        # compiling init for the whole mesh costs ~20 s across processes for weights shared init replaces.
        sample = np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)
        with jax.default_device(self.mesh.local_devices[0]):
            params = jax.device_get(self.model.init(init_key, sample, train=False)["params"])
        rep, shd = self._replicated, self._sharded
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

    def _put(self, array: np.ndarray, sharding: NamedSharding) -> jax.Array:
        """A global array from a host array every process holds in full; each process fills its own shards."""
        array = np.asarray(array)
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    def _set_params(self, params) -> None:
        self.params = jax.tree.map(lambda a: self._put(np.asarray(a), self._replicated), params)
        self.opt_state = self._init_opt(self.params)

    def load_weights(self, canonical: weights.Weights) -> None:
        self._set_params(params_from_canonical(weights.check(canonical, self.recipe)))

    def export_weights(self) -> weights.Weights:
        return to_canonical(jax.tree.map(_local, self.params))

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        images, labels = np.ascontiguousarray(x)[..., None], np.asarray(y, np.int32)
        losses = []
        for i in range(len(x)):
            step = self._put(np.int32(self._step), self._replicated)
            self.params, self.opt_state, loss = self._train_step(
                self.params, self.opt_state, self._put(images[i], self._sharded), self._put(labels[i], self._sharded), step)
            losses.append(loss)
            self._step += 1
        return np.array([_local(loss) for loss in losses], np.float32)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        loss, grads = self._grads(self.params, self._put(np.ascontiguousarray(x)[..., None], self._sharded),
                                  self._put(np.asarray(y, np.int32), self._sharded))
        return float(_local(loss)), to_canonical(jax.tree.map(_local, grads))

    def _logits(self, x: np.ndarray) -> np.ndarray:
        # Replicated: the last evaluation batch need not divide by the device count.
        return _local(self._predict(self.params, self._put(np.ascontiguousarray(x)[..., None], self._replicated)))

    def versions(self) -> dict[str, str]:
        import jaxlib

        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
                "optax": optax.__version__}

    def device_info(self) -> dict:
        devices = list(self.mesh.devices.flat)
        return {"kind": self.device, "name": devices[0].device_kind, "count": len(devices),
                "engine": "jax.sharding NamedSharding over Mesh('data')", "processes": jax.process_count()}

    def numerics(self) -> dict:
        return numerics(self.mesh.devices.flat[0].platform)

    def peak_device_memory(self) -> int | None:
        if self.device == "cpu":
            return None
        stats = [d.memory_stats() or {} for d in self.mesh.local_devices]
        peaks = [s["peak_bytes_in_use"] for s in stats if "peak_bytes_in_use" in s]
        return int(max(peaks)) if peaks else None
