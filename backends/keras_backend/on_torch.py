"""What Keras leaves to PyTorch: threads, devices, numerics, versions, gradients for the parity probe."""

from __future__ import annotations

import numpy as np
import torch

from mnist_bench.common.interface import DeviceUnavailable
# The matmul peak is the framework's under Keras: Keras adds nothing to a matmul's speed.
from mnist_bench.backends.torch_backend.probes import matmul_probe  # noqa: F401 (the spec's matmul_probe)


def configure(threads: int | None, device: str, tf32: bool = False) -> str:
    """Threads and fair numerics (TF32 only when ``tf32``); returns the Keras device name."""
    if threads:
        torch.set_num_threads(threads)
    if device == "gpu":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"PyTorch {torch.__version__} sees no CUDA GPU "
                                    f"(CUDA build: {torch.version.cuda or 'none, this is a CPU-only build'})")
        # Fair numerics: fp32 matmuls and convolutions, not TF32, unless the precision is tf32.
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        return "gpu:0"
    if device != "cpu":
        raise DeviceUnavailable(f"PyTorch has no {device!r} device here")
    # "cpu", not "cpu:0": Keras moves each new variable's Parameter with .to(device), and torch copies
    # it for "cpu:0" (a different device string), leaving a non-leaf tensor that autograd never fills.
    return "cpu"


def numerics(device: str) -> dict:
    cuda = device == "gpu"
    matmul_tf32, conv_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    return {"dtype": "float32", "tf32": cuda and bool(matmul_tf32 or conv_tf32),
            "matmul_precision": torch.get_float32_matmul_precision()}


def versions() -> dict[str, str]:
    return {"torch": torch.__version__, "cuda": torch.version.cuda or ""}


def device_info(device: str) -> dict:
    if device == "gpu":
        return {"kind": "gpu", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}
    return {"kind": "cpu", "name": "cpu", "count": 1, "threads": torch.get_num_threads()}


def peak_memory(device: str) -> int | None:
    return int(torch.cuda.max_memory_allocated(0)) if device == "gpu" else None


def loss_and_grads(model, loss_fn, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Keras variables on PyTorch hold ``torch.nn.Parameter``s: autograd fills their ``.grad``."""
    params = [v.value for v in model.trainable_variables]
    for p in params:
        p.grad = None
    loss = loss_fn(y, model(x, training=False))
    loss.backward()
    return float(loss.item()), [p.grad.detach().cpu().numpy() for p in params]
