"""What Keras leaves to TensorFlow: threads, devices, numerics, versions, gradients for the parity probe."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mnist_bench.common.interface import DeviceUnavailable
# The matmul peak is the framework's under Keras: Keras adds nothing to a matmul's speed.
from mnist_bench.backends.tensorflow_backend.probes import matmul_probe  # noqa: F401 (the spec's matmul_probe)


def configure(threads: int | None, device: str, tf32: bool = False) -> str:
    """Threads (before TensorFlow's runtime starts), memory growth and fair numerics; returns the Keras device name."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.config.experimental.enable_tensor_float_32_execution(tf32)  # no TF32 on Ampere and later, unless tf32
    if device != "cpu" and not tf.config.list_physical_devices(device.upper()):
        seen = ", ".join(d.name for d in tf.config.list_physical_devices()) or "none"
        raise DeviceUnavailable(f"TensorFlow {tf.__version__} sees no {device.upper()}; devices found: {seen}")
    return f"{device}:0"


def numerics(device: str) -> dict:
    enabled = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    tf32 = enabled and device == "gpu"
    return {"dtype": "float32", "tf32": tf32, "matmul_precision": "tf32" if tf32 else "float32",
            "tensor_float_32_execution": enabled}


def versions() -> dict[str, str]:
    info = tf.sysconfig.get_build_info()
    return {"tensorflow": tf.__version__, "cuda": str(info.get("cuda_version", "")),
            "cudnn": str(info.get("cudnn_version", ""))}


def device_info(device: str) -> dict:
    found = tf.config.list_physical_devices(device.upper())
    name = tf.config.experimental.get_device_details(found[0]).get("device_name", device) if device == "gpu" else device
    info = {"kind": device, "name": name, "count": len(found)}
    if device == "cpu":
        info["threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    return info


def peak_memory(device: str) -> int | None:
    return int(tf.config.experimental.get_memory_info("GPU:0")["peak"]) if device == "gpu" else None


def loss_and_grads(model, loss_fn, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=False))
    grads = tape.gradient(loss, model.trainable_variables)
    return float(loss), [g.numpy() for g in grads]
