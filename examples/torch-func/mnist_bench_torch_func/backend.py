"""The model as a pure function of a parameter dict, differentiated with ``torch.func.grad``.

Parameters stay in mnist-bench's canonical layout (channels-last kernels, dense1 features in
(h, w, c) order), so loading and exporting weights is a copy; the forward pass converts
layouts around ``F.conv2d``, which is channels-first. SGD with momentum is written out:
``v = momentum * v + g; w -= lr * v``, the same update as ``torch.optim.SGD``.
"""

from __future__ import annotations

from typing import final

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import grad_and_value

from mnist_bench import Backend, DeviceUnavailable
from mnist_bench.common import weights
from mnist_bench_torch_func.spec import SPEC


def flatten_hwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W*C): the canonical (h, w, c) feature order."""
    return x.permute(0, 2, 3, 1).flatten(1)


def logits_of(params: dict, x: torch.Tensor, dropout: tuple[float, float], generator, flatten) -> torch.Tensor:
    """Logits for images x (B, 28, 28); dropout rates of 0 mean inference."""
    h = x.unsqueeze(1)
    h = F.relu(F.conv2d(h, params["conv1/kernel"].permute(3, 2, 0, 1), params["conv1/bias"]))
    h = F.relu(F.conv2d(h, params["conv2/kernel"].permute(3, 2, 0, 1), params["conv2/bias"]))
    h = _dropout(F.max_pool2d(h, 2), dropout[0], generator)
    h = F.relu(flatten(h) @ params["dense1/kernel"] + params["dense1/bias"])
    h = _dropout(h, dropout[1], generator)
    return h @ params["dense2/kernel"] + params["dense2/bias"]


def _dropout(x: torch.Tensor, p: float, generator) -> torch.Tensor:
    if p == 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype) / (1.0 - p)


@final
class TorchFuncBackend(Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.modes
    # Which order the dense layer reads its features in: the canonical one.
    flatten = staticmethod(flatten_hwc)

    def _build(self) -> None:
        if self.device == "gpu" and not torch.cuda.is_available():
            raise DeviceUnavailable(f"PyTorch {torch.__version__} sees no CUDA GPU")
        if self.device not in ("cpu", "gpu"):
            raise DeviceUnavailable(f"torch-func runs on cpu or gpu, not {self.device!r}")
        if self.threads:
            torch.set_num_threads(self.threads)
        self._device = torch.device("cuda", 0) if self.device == "gpu" else torch.device("cpu")
        self._generator = torch.Generator(device=self._device).manual_seed(self.seed)
        self.load_weights(weights.init(self.recipe, self.seed))

    def load_weights(self, canonical: weights.Weights) -> None:
        checked = weights.check(canonical, self.recipe)
        self.params = {k: torch.tensor(np.asarray(v, np.float32), device=self._device) for k, v in checked.items()}
        self.velocity = {k: torch.zeros_like(v) for k, v in self.params.items()}

    def export_weights(self) -> weights.Weights:
        return {k: v.cpu().numpy().copy() for k, v in self.params.items()}

    def _loss(self, params, x, y, dropout):
        return F.cross_entropy(logits_of(params, x, dropout, self._generator, self.flatten), y)

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        step = grad_and_value(self._loss)
        rates = (self.recipe.dropout1, self.recipe.dropout2)
        lr, momentum = self.recipe.learning_rate, self.recipe.momentum
        losses = []
        for xb, yb in zip(self._tensor(x), self._tensor(y, torch.int64)):
            grads, loss = step(self.params, xb, yb, rates)
            with torch.no_grad():
                for k in self.params:
                    self.velocity[k].mul_(momentum).add_(grads[k])
                    self.params[k].sub_(lr * self.velocity[k])
            losses.append(loss.detach())
        return torch.stack(losses).cpu().numpy()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        grads, loss = grad_and_value(self._loss)(self.params, self._tensor(x), self._tensor(y, torch.int64), (0.0, 0.0))
        return float(loss), {k: v.cpu().numpy() for k, v in grads.items()}

    @torch.no_grad()
    def _logits(self, x: np.ndarray) -> np.ndarray:
        return logits_of(self.params, self._tensor(x), (0.0, 0.0), None, self.flatten).cpu().numpy()

    def _tensor(self, a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=self._device)

    def numerics(self) -> dict:
        tf32 = self._device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
        return {"dtype": "float32", "tf32": bool(tf32), "matmul_precision": torch.get_float32_matmul_precision()}

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def device_info(self) -> dict:
        if self._device.type == "cuda":
            return {"kind": "gpu", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}
        return {"kind": "cpu", "name": "cpu", "count": 1, "threads": torch.get_num_threads()}

    def peak_device_memory(self) -> int | None:
        return int(torch.cuda.max_memory_allocated()) if self._device.type == "cuda" else None
