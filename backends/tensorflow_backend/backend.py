"""TensorFlow + Keras 3: a ``keras.Sequential`` model with a compiled custom train step.

The step is the one from TensorFlow's "quickstart for experts": a
``tf.GradientTape`` over the Keras model, a Keras SGD optimiser applying the
gradients. Modes: ``compiled`` (the default, ``tf.function``), ``xla``
(``tf.function(jit_compile=True)``), ``eager``, and ``tuned``: the same step run
for a whole chunk inside one ``tf.function`` loop, one call per chunk. Keras is channels-last with
(kh, kw, in, out) kernels and (in, out) dense kernels, so it already speaks the
canonical layout.

Precisions as TensorFlow's mixed-precision guide has them for a custom loop over a Keras model: the
Keras dtype policy ``mixed_bfloat16`` set before the model is built (float32 variables, bfloat16
compute), the loss from the logits converted to float32 by the Keras loss; tf32 is
``enable_tensor_float_32_execution``. No fp16: its custom loop would need the loss scaling the
guide adds by hand (``keras-tensorflow`` offers fp16 through ``model.fit``).
"""

from __future__ import annotations

import os
from typing import final

# Keras 3 must run on TensorFlow here whatever the user's KERAS_BACKEND says.
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnist_bench.common import weights  # noqa: E402
from mnist_bench.common.interface import Backend, DeviceUnavailable  # noqa: E402
from mnist_bench.backends.tensorflow_backend.spec import SPEC  # noqa: E402
from mnist_bench.common.model import IMAGE_SIZE, NUM_CLASSES  # noqa: E402

LAYERS = ("conv1", "conv2", "dense1", "dense2")


def build_model(recipe) -> keras.Model:
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
            layers.Conv2D(recipe.conv1_filters, 3, activation="relu", name="conv1"),
            layers.Conv2D(recipe.conv2_filters, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2),
            layers.Dropout(recipe.dropout1),
            layers.Flatten(),
            layers.Dense(recipe.hidden, activation="relu", name="dense1"),
            layers.Dropout(recipe.dropout2),
            layers.Dense(NUM_CLASSES, name="dense2"),
        ],
        name="mnist_cnn",
    )


def _tf_device(kind: str) -> str:
    if kind == "cpu":
        return "/CPU:0"
    found = tf.config.list_physical_devices(kind.upper())
    if not found:
        seen = ", ".join(d.name for d in tf.config.list_physical_devices()) or "none"
        hint = " (tensorflow-cpu has no GPU support; install tensorflow[and-cuda])" if kind == "gpu" else ""
        raise DeviceUnavailable(f"TensorFlow {tf.__version__} sees no {kind.upper()}; devices found: {seen}{hint}")
    return f"/{kind.upper()}:0"


def set_weights(model: keras.Model, optimizer, w: weights.Weights) -> None:
    """Load canonical weights (Keras already speaks the layout) and reset the optimiser state."""
    for layer in LAYERS:
        model.get_layer(layer).set_weights([w[f"{layer}/kernel"], w[f"{layer}/bias"]])
    # Zero the momentum buffers and step count in place: the traced step keeps
    # pointing at the same variables, so nothing is retraced.
    # (optimizer.variables also holds the learning rate, so not all of them.)
    for var in [*optimizer.momentums, optimizer.iterations]:
        var.assign(tf.zeros_like(var))


def canonical(model: keras.Model, tensors) -> weights.Weights:
    """Values (parameters or gradients) in ``model.trainable_variables`` order -> canonical names."""
    out: weights.Weights = {}
    for var, value in zip(model.trainable_variables, tensors):
        layer = var.path.split("/")[-2]
        out[f"{layer}/{var.name}"] = np.asarray(value)
    return out


def numerics(device: str, model: keras.Model | None = None) -> dict:
    """TensorFlow's settings as they stand: TF32 applies on GPUs only; the compute dtype is the model's policy."""
    enabled = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    tf32 = enabled and device == "gpu"
    compute = model.get_layer("conv1").compute_dtype if model is not None else "float32"
    return {"dtype": "float32", "compute_dtype": compute, "tf32": tf32,
            "matmul_precision": "tf32" if tf32 else "float32", "tensor_float_32_execution": enabled}


def set_threads(threads: int | None) -> None:
    if threads:
        # Must happen before TensorFlow starts its runtime; the worker calls us first.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


@final
class TensorFlowBackend(Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.modes
    precisions = SPEC.precisions

    def _build(self) -> None:
        set_threads(self.threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            # Grow on demand instead of taking all GPU memory at start.
            tf.config.experimental.set_memory_growth(gpu, True)
        # Fair numerics: no TF32 on Ampere and later, unless the precision is tf32.
        tf.config.experimental.enable_tensor_float_32_execution(self.precision.tf32)
        self._device = _tf_device(self.device)
        keras.utils.set_random_seed(self.seed)
        keras.config.set_dtype_policy(self.precision.keras_policy)  # global in Keras: set every time, float32 too
        with tf.device(self._device):
            self.model = build_model(self.recipe)
            self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.optimizer = keras.optimizers.SGD(
                learning_rate=self.recipe.learning_rate, momentum=self.recipe.momentum
            )
            self.optimizer.build(self.model.trainable_variables)
        wrap = {
            "eager": lambda f: f,
            "compiled": tf.function,
            "xla": lambda f: tf.function(f, jit_compile=True),
            "tuned": tf.function,
        }[self.mode]
        self._train_step = wrap(self._train_step_fn)
        if self.mode == "tuned":
            # Any number of steps per call without retracing.
            self._train_chunk = tf.function(self._train_chunk_fn, input_signature=[
                tf.TensorSpec([None, None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32),
                tf.TensorSpec([None, None], tf.int32)])
        self._grad_step = wrap(self._grad_fn)
        self._predict = wrap(self._predict_fn)

    def _train_step_fn(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.model(x, training=True))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def _train_chunk_fn(self, xs, ys):
        steps = tf.shape(xs)[0]
        losses = tf.TensorArray(tf.float32, size=steps)
        for i in tf.range(steps):  # AutoGraph: a tf.while_loop inside the graph
            losses = losses.write(i, self._train_step_fn(xs[i], ys[i]))
        return losses.stack()

    def _grad_fn(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.model(x, training=False))
        return loss, tape.gradient(loss, self.model.trainable_variables)

    def _predict_fn(self, x):
        return self.model(x, training=False)

    def load_weights(self, canonical: weights.Weights) -> None:
        set_weights(self.model, self.optimizer, weights.check(canonical, self.recipe))

    def _canonical(self, tensors) -> weights.Weights:
        return canonical(self.model, tensors)

    def export_weights(self) -> weights.Weights:
        return self._canonical([v.numpy() for v in self.model.trainable_variables])

    def _images(self, x: np.ndarray) -> tf.Tensor:
        with tf.device(self._device):
            return tf.constant(np.ascontiguousarray(x)[..., None])

    def _labels(self, y: np.ndarray) -> tf.Tensor:
        with tf.device(self._device):
            return tf.constant(np.asarray(y, dtype=np.int32))

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        images, labels = self._images(x), self._labels(y)
        with tf.device(self._device):
            if self.mode == "tuned":
                return self._train_chunk(images, labels).numpy()
            losses = [self._train_step(images[i], labels[i]) for i in range(len(x))]
            return tf.stack(losses).numpy()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        with tf.device(self._device):
            loss, grads = self._grad_step(self._images(x), self._labels(y))
        return float(loss), self._canonical([g.numpy() for g in grads])

    def _logits(self, x: np.ndarray) -> np.ndarray:
        with tf.device(self._device):
            return self._predict(self._images(x)).numpy().astype(np.float32)

    def versions(self) -> dict[str, str]:
        info = tf.sysconfig.get_build_info()
        return {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "cuda": str(info.get("cuda_version", "")),
            "cudnn": str(info.get("cudnn_version", "")),
        }

    def device_info(self) -> dict:
        kind = self._device.strip("/").split(":")[0].lower()
        found = tf.config.list_physical_devices(kind.upper())
        name = kind
        if kind == "gpu" and found:
            name = tf.config.experimental.get_device_details(found[0]).get("device_name", "gpu")
        info = {"kind": kind, "name": name, "count": len(found)}
        if kind == "cpu":
            info["threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        return info

    def numerics(self) -> dict:
        return numerics(self.device, self.model)

    def peak_device_memory(self) -> int | None:
        if not self._device.startswith("/GPU"):
            return None
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
