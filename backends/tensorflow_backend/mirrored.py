"""TensorFlow data-parallel: ``tf.distribute`` with the Keras model of :mod:`mnist_bench.backends.tensorflow_backend.backend`.

One host: ``MirroredStrategy`` over ``devices`` GPUs, or over as many logical CPU
devices (``tf.config.set_logical_device_configuration``, before TensorFlow starts
its runtime). Several hosts: ``MultiWorkerMirroredStrategy``, which reads every
worker's address from ``TF_CONFIG`` (see docs/data-parallel.md); on CPU each
worker is one device.

The step is TensorFlow's "custom training loop with tf.distribute" pattern:
``strategy.run`` on each replica's shard of the global batch, the per-example
loss scaled by ``tf.nn.compute_average_loss(..., global_batch_size=B)``, and the
Keras optimiser summing the replicas' gradients across devices -- which makes the
global-batch mean and its gradient. Runs ``tf.function`` (the backend's default
mode) only.
"""

from __future__ import annotations

import json
import os
from typing import final

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnist_bench.backends.tensorflow_backend.backend import (  # noqa: E402
    build_model, canonical, numerics, set_threads, set_weights)
from mnist_bench.common import parallel, weights  # noqa: E402
from mnist_bench.common.interface import Backend, DeviceUnavailable  # noqa: E402
from mnist_bench.backends.tensorflow_backend.spec import SPEC  # noqa: E402

SUM = tf.distribute.ReduceOp.SUM


def _check_tf_config(topology: parallel.Topology) -> None:
    raw = os.environ.get("TF_CONFIG")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
               '"task": {"type": "worker", "index": R}}\'')
    if not raw:
        raise parallel.TopologyError(
            "TensorFlow across hosts uses MultiWorkerMirroredStrategy, which reads every worker's address from "
            f"TF_CONFIG; set it on each host, e.g. {example} (docs/data-parallel.md)")
    try:
        config = json.loads(raw)
        workers, index = config["cluster"]["worker"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise parallel.TopologyError(f"TF_CONFIG is not usable ({type(exc).__name__}: {exc}); expected {example}") from None
    if len(workers) != topology.hosts or index != topology.host_rank:
        raise parallel.TopologyError(
            f"TF_CONFIG lists {len(workers)} workers with task index {index}, but the run says --hosts "
            f"{topology.hosts} --host-rank {topology.host_rank}; make them agree")


def _strategy(kind: str, topology: parallel.Topology) -> tf.distribute.Strategy:
    """The strategy; must be made before TensorFlow starts its runtime."""
    if kind not in ("cpu", "gpu"):
        raise DeviceUnavailable(f"mnist-bench's TensorFlow data-parallel backend runs on cpu or gpu, not {kind!r}")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if kind == "gpu" and len(gpus) < topology.devices:
        raise DeviceUnavailable(f"--devices {topology.devices} asks for {topology.devices} GPUs per host but "
                                f"TensorFlow {tf.__version__} sees {len(gpus)}; use --devices {len(gpus) or 1} or fewer")
    if topology.hosts > 1:
        _check_tf_config(topology)
        if kind == "cpu" and topology.devices > 1:
            raise parallel.TopologyError(
                "TensorFlow's MultiWorkerMirroredStrategy uses one CPU device per worker; "
                "use --devices 1 per host on CPU (or start more workers)")
        if kind == "cpu":
            tf.config.set_visible_devices([], "GPU")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "cpu":
        tf.config.set_visible_devices([], "GPU")
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * topology.devices)
        return tf.distribute.MirroredStrategy(devices=[f"/CPU:{i}" for i in range(topology.devices)])
    return tf.distribute.MirroredStrategy(devices=[f"/GPU:{i}" for i in range(topology.devices)])


@final
class TensorFlowMirroredBackend(Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.data_parallel_modes
    data_parallel = True

    def _build(self) -> None:
        set_threads(self.threads)
        self.strategy = _strategy(self.device, self.topology)
        if self.strategy.num_replicas_in_sync != self.topology.world:
            raise RuntimeError(f"{type(self.strategy).__name__} has {self.strategy.num_replicas_in_sync} replicas, "
                               f"the run asks for {self.topology.world}")
        tf.config.experimental.enable_tensor_float_32_execution(False)
        keras.utils.set_random_seed(self.seed)
        with self.strategy.scope():
            self.model = build_model(self.recipe)
            # Per-example losses; each replica scales by the *global* batch size.
            self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
            self.optimizer = keras.optimizers.SGD(learning_rate=self.recipe.learning_rate,
                                                  momentum=self.recipe.momentum)
            self.optimizer.build(self.model.trainable_variables)
        self._first = "/GPU:0" if self.device == "gpu" else "/CPU:0"
        self._train_step = tf.function(self._train_step_fn)
        self._grad_step = tf.function(self._grad_fn)
        self._predict = tf.function(lambda x: self.model(x, training=False))

    # --- per replica ---------------------------------------------------------------------------------

    def _replica_loss(self, x, y, training: bool):
        per_example = self.loss_fn(y, self.model(x, training=training))
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.recipe.batch_size)

    def _replica_train(self, xs, ys, i):
        with tf.GradientTape() as tape:
            loss = self._replica_loss(xs[i], ys[i], True)
        grads = tape.gradient(loss, self.model.trainable_variables)
        # Keras sums the gradients over replicas (all-reduce) before applying them.
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def _replica_grads(self, x, y):
        with tf.GradientTape() as tape:
            loss = self._replica_loss(x, y, False)
        return loss, tape.gradient(loss, self.model.trainable_variables)

    # --- across replicas -----------------------------------------------------------------------------

    def _train_step_fn(self, xs, ys, i):
        return self.strategy.reduce(SUM, self.strategy.run(self._replica_train, args=(xs, ys, i)), axis=None)

    def _grad_fn(self, x, y):
        loss, grads = self.strategy.run(self._replica_grads, args=(x, y))
        return self.strategy.reduce(SUM, loss, axis=None), [self.strategy.reduce(SUM, g, axis=None) for g in grads]

    def _distribute(self, array: np.ndarray, axis: int):
        """Replica r (numbered across workers) gets shard r of ``array`` along ``axis``."""
        world = self.strategy.num_replicas_in_sync
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(parallel.shard(array, ctx.replica_id_in_sync_group, world, axis=axis)))

    def load_weights(self, canonical_weights: weights.Weights) -> None:
        set_weights(self.model, self.optimizer, weights.check(canonical_weights, self.recipe))

    def export_weights(self) -> weights.Weights:
        return canonical(self.model, [v.numpy() for v in self.model.trainable_variables])

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xs = self._distribute(np.ascontiguousarray(x)[..., None], axis=1)
        ys = self._distribute(np.asarray(y, dtype=np.int32), axis=1)
        losses = [self._train_step(xs, ys, tf.constant(i)) for i in range(len(x))]
        return tf.stack(losses).numpy()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        loss, grads = self._grad_step(self._distribute(np.ascontiguousarray(x)[..., None], axis=0),
                                      self._distribute(np.asarray(y, dtype=np.int32), axis=0))
        return float(loss), canonical(self.model, [g.numpy() for g in grads])

    def _logits(self, x: np.ndarray) -> np.ndarray:
        # Evaluation needs no collective: every replica holds the same weights.
        with tf.device(self._first):
            return self._predict(tf.constant(np.ascontiguousarray(x)[..., None])).numpy()

    def versions(self) -> dict[str, str]:
        info = tf.sysconfig.get_build_info()
        return {"tensorflow": tf.__version__, "keras": keras.__version__,
                "cuda": str(info.get("cuda_version", "")), "cudnn": str(info.get("cudnn_version", ""))}

    def device_info(self) -> dict:
        info = {"kind": self.device, "name": self.device, "count": self.strategy.num_replicas_in_sync,
                "engine": f"tf.distribute.{type(self.strategy).__name__}",
                "local_devices": list(self.strategy.extended.worker_devices)}
        if self.device == "gpu":
            found = tf.config.list_physical_devices("GPU")
            info["name"] = tf.config.experimental.get_device_details(found[0]).get("device_name", "gpu")
        else:
            info["threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        return info

    def numerics(self) -> dict:
        return numerics(self.device)

    def peak_device_memory(self) -> int | None:
        if self.device != "gpu":
            return None
        return max(int(tf.config.experimental.get_memory_info(f"GPU:{i}")["peak"]) for i in range(self.topology.devices))
