"""What Keras leaves to JAX: devices, numerics, versions, gradients for the parity probe."""

from __future__ import annotations

import jax
import numpy as np

from mnist_bench.common.interface import DeviceUnavailable
# The matmul peak is the framework's under Keras: Keras adds nothing to a matmul's speed.
from mnist_bench.backends.jax_shared.probes import matmul_probe  # noqa: F401 (the spec's matmul_probe)


def configure(threads: int | None, device: str, tf32: bool = False) -> str:
    """Fair numerics on the device (TF32 only when ``tf32``); returns the Keras device name. (XLA takes its
    threads from the pinning.)"""
    try:
        found = jax.devices(device)
    except RuntimeError:
        seen = ", ".join(f"{d.platform}:{d.id}" for d in jax.devices()) or "none"
        raise DeviceUnavailable(f"JAX {jax.__version__} sees no {device!r} device; devices found: {seen}") from None
    if device != "cpu":
        # JAX's default float32 matmul/conv precision on GPUs and TPUs is lower than float32.
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    return f"{found[0].platform}:0"


def numerics(device: str) -> dict:
    precision = jax.config.jax_default_matmul_precision
    full = device == "cpu" or precision in ("highest", "float32")
    return {"dtype": "float32", "tf32": device == "gpu" and not full,
            "matmul_precision": precision or ("default (float32 on CPUs)" if device == "cpu" else "default")}


def versions() -> dict[str, str]:
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}


def device_info(device: str) -> dict:
    found = jax.devices(device)
    return {"kind": device, "name": found[0].device_kind, "count": len(found)}


def peak_memory(device: str) -> int | None:
    stats = jax.devices(device)[0].memory_stats() if device != "cpu" else None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def loss_and_grads(model, loss_fn, x, y, compiled: bool = False) -> tuple[float, list[np.ndarray]]:
    """Keras's stateless API on JAX: the model as a pure function of its variables, differentiated by JAX.

    ``compiled``: as one ``jax.jit`` program. A batch sharded over XLA host devices needs it: run op by
    op, the all-reduces of consecutive ops can deadlock the CPU client (docs/framework-bugs.md).
    """

    def loss(trainable, non_trainable, x, y):
        logits, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return loss_fn(y, logits)

    step = jax.value_and_grad(loss)
    value, grads = (jax.jit(step) if compiled else step)(
        [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables], x, y)
    return float(value), [np.asarray(g) for g in grads]
