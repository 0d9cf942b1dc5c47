"""Keras 3: a ``keras.Sequential`` model trained with ``model.compile`` + ``model.fit``, on whichever
framework ``KERAS_BACKEND`` named when Keras was imported (the spec's ``env`` sets it in the worker).

Training is one ``model.fit`` call per epoch, as Keras users write it, over the epoch's batches in the
harness's order (``shuffle=False``). :class:`ChunkStamps`, a ``keras.callbacks.Callback``, hands the
harness each chunk's losses at its boundary; Keras converts each step's logs to Python floats
before calling a callback that watches batch ends, so the device has finished the step when the
clock is read. Keras logs the epoch's running mean of the loss, not each step's: the per-step
losses are recovered from consecutive means (:func:`step_losses`), exact up to float32 rounding of
the running sum (about 1e-6 over the parity probe's 60 steps).

The settings that would break parity with the other implementations are set explicitly: logits
into ``SparseCategoricalCrossentropy(from_logits=True)`` (the probabilities path clips at
``epsilon``), ``channels_last`` on every framework (so kernels and the flattened features are
already canonical), and ``load_weights`` sets every variable and zeroes the optimiser's momentum
and step count. Keras's SGD keeps ``m = momentum * m - lr * g; w += m``, which is the recipe's
``v = momentum * v + g; w -= lr * v`` with ``m = -lr * v`` while the learning rate is constant.

Precisions are Keras's dtype policies, set before the model is built: ``mixed_bfloat16`` (bf16) and
``mixed_float16`` (fp16, for which ``model.compile`` wraps the optimiser in a ``LossScaleOptimizer``
itself) keep float32 variables and compute in the lower precision; the loss converts the logits to
float32 (a Keras loss computes in ``floatx``). tf32 is the framework underneath's TF32 switch.
"""

from __future__ import annotations

import importlib
from typing import Callable, final

import keras
import numpy as np

from mnist_bench.backends.keras_backend.running_mean import step_losses
from mnist_bench.backends.keras_backend.spec import JIT_COMPILE, SPECS
from mnist_bench.common import weights
from mnist_bench.common.interface import Backend, EpochTrainer
from mnist_bench.common.model import IMAGE_SIZE, NUM_CLASSES

FRAMEWORK = keras.backend.backend()  # fixed when Keras was imported, from KERAS_BACKEND
SPEC = SPECS.get(f"keras-{FRAMEWORK}")
if SPEC is None:
    raise ImportError(f"Keras runs on {FRAMEWORK!r}, which mnist-bench has no Keras implementation for; "
                      f"set KERAS_BACKEND to one of {', '.join(s.removeprefix('keras-') for s in SPECS)}")
framework = importlib.import_module(f"mnist_bench.backends.keras_backend.on_{FRAMEWORK}")
LAYERS = ("conv1", "conv2", "dense1", "dense2")


def build_model(recipe) -> keras.Model:
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
            layers.Conv2D(recipe.conv1_filters, 3, activation="relu", data_format="channels_last", name="conv1"),
            layers.Conv2D(recipe.conv2_filters, 3, activation="relu", data_format="channels_last", name="conv2"),
            layers.MaxPooling2D(2, data_format="channels_last"),
            layers.Dropout(recipe.dropout1),
            layers.Flatten(data_format="channels_last"),
            layers.Dense(recipe.hidden, activation="relu", name="dense1"),
            layers.Dropout(recipe.dropout2),
            layers.Dense(NUM_CLASSES, name="dense2"),
        ],
        name="mnist_cnn",
    )


class ChunkStamps(keras.callbacks.Callback):
    """Calls ``on_chunk(losses)`` at every chunk boundary of one epoch, with that chunk's per-step losses.

    It watches batch ends, so Keras dispatches it synchronously and converts each step's logs to
    Python floats first (``keras.callbacks.CallbackList``): when it runs, the step has finished on
    the device. Without such a callback Keras converts them on a worker thread instead, so the main
    thread may queue the next step first; the difference is one step's dispatch overlapping the
    previous step's work, small on a CPU.
    """

    def __init__(self, chunk_sizes: list[int], on_chunk: Callable[[np.ndarray], None]) -> None:
        super().__init__()
        self._ends = [int(end) for end in np.cumsum(chunk_sizes)]
        self._on_chunk = on_chunk
        self._means: list[float] = []
        self._start = 0

    def on_train_batch_end(self, batch, logs=None):
        self._means.append(float(logs["loss"]))
        if self._ends and len(self._means) == self._ends[0]:
            self._ends.pop(0)
            losses = step_losses(self._means, self._start)
            self._start = len(self._means)
            self._on_chunk(losses)


class KerasModelBackend(Backend, EpochTrainer):
    """What the single-device and the data-parallel Keras backends share: the model, its weights, ``fit``.

    The two final classes differ in where the model lives (:meth:`_place`, :meth:`_scope`) and which rows of
    each batch this process feeds to ``fit`` (:meth:`_fit_rows`); the data-parallel one also places the
    probes' batches itself (``loss_and_grads``, ``_logits``).
    """

    name = SPEC.name  # the spec is the one place these are written

    def _place(self) -> None:
        """Choose the device (and, data-parallel, the distribution) before any variable exists."""
        self._device = framework.configure(self.threads, self.device, self.precision.tf32)

    def _scope(self):
        return keras.device(self._device)

    def _fit_rows(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(images, labels, batch size) that this process passes to ``fit``: every row of every batch."""
        return x, y, x.shape[1]

    def _build(self) -> None:
        keras.utils.set_random_seed(self.seed)  # Keras's own initialisers and dropout masks
        self._place()
        # Global in Keras, so set every time (another backend in this process may have set another one).
        keras.config.set_dtype_policy(self.precision.keras_policy)
        with self._scope():
            self.model = build_model(self.recipe)
            self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.optimizer = keras.optimizers.SGD(learning_rate=self.recipe.learning_rate,
                                                  momentum=self.recipe.momentum)
            self.model.compile(optimizer=self.optimizer, loss=self.loss_fn, jit_compile=JIT_COMPILE[self.mode])
            self.optimizer.build(self.model.trainable_variables)

    def load_weights(self, canonical: weights.Weights) -> None:
        w = weights.check(canonical, self.recipe)
        for layer in LAYERS:  # Keras is channels-last with (kh, kw, in, out) kernels: the canonical layout
            self.model.get_layer(layer).set_weights([w[f"{layer}/kernel"], w[f"{layer}/bias"]])
        # (optimizer.variables also holds the learning rate, so not all of them.)
        for var in [*self.optimizer.momentums, self.optimizer.iterations]:
            var.assign(np.zeros(var.shape, var.dtype))

    def _canonical(self, values) -> weights.Weights:
        """Values in ``model.trainable_variables`` order -> canonical names."""
        return {f"{var.path.split('/')[-2]}/{var.name}": np.asarray(value)
                for var, value in zip(self.model.trainable_variables, values)}

    def export_weights(self) -> weights.Weights:
        return self._canonical([keras.ops.convert_to_numpy(v.value) for v in self.model.trainable_variables])

    def train_epoch(self, x: np.ndarray, y: np.ndarray, chunk_sizes: list[int],
                    on_chunk: Callable[[np.ndarray], None]) -> None:
        stamps = ChunkStamps(chunk_sizes, on_chunk)
        x, y, batch_size = self._fit_rows(x, y)
        with self._scope():
            self.model.fit(np.ascontiguousarray(x).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1),
                           np.asarray(y, np.int32).reshape(-1), batch_size=batch_size, epochs=1,
                           shuffle=False, verbose=0, callbacks=[stamps])

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        chunks: list[np.ndarray] = []
        self.train_epoch(x, y, [len(x)], chunks.append)
        return chunks[0]

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        with self._scope():
            loss, grads = framework.loss_and_grads(self.model, self.loss_fn, np.ascontiguousarray(x)[..., None],
                                                   np.asarray(y, np.int32))
        return loss, self._canonical(grads)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        with self._scope():
            return np.asarray(self.model.predict_on_batch(np.ascontiguousarray(x)[..., None]), np.float32)

    def versions(self) -> dict[str, str]:
        return {"keras": keras.__version__, **framework.versions()}

    def device_info(self) -> dict:
        return framework.device_info(self.device)

    def peak_device_memory(self) -> int | None:
        return framework.peak_memory(self.device)

    def numerics(self) -> dict:
        # jit_compile="auto" is resolved by Keras per framework and device: what it became is part of the run.
        return {**framework.numerics(self.device), "compute_dtype": self.model.get_layer("conv1").compute_dtype,
                "keras": {"dtype_policy": self.model.get_layer("conv1").dtype_policy.name,
                          "backend": FRAMEWORK, "jit_compile": JIT_COMPILE[self.mode],
                          "jit_compile_resolved": bool(self.model.jit_compile),
                          "image_data_format": "channels_last"}}


@final
class KerasBackend(KerasModelBackend):
    modes = SPEC.modes
    precisions = SPEC.precisions
