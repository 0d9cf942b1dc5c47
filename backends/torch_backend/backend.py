"""PyTorch: an ``nn.Module`` trained with ``torch.optim.SGD``, as in pytorch/examples mnist.

Modes: ``eager`` (the default, plain PyTorch), ``compiled`` (``torch.compile``
of the model) and ``tuned``: eager PyTorch with a cheaper dropout-mask draw, the one
change that measured faster on the CPU (bench/README.md has what else was tried). PyTorch is channels-first: images are fed as NCHW, kernels are
(out, in, kh, kw), and flattening NCHW gives dense1 features in (c, h, w) order,
so dense1's rows are permuted to and from the canonical (h, w, c) order.

Precisions as PyTorch's automatic mixed precision recipe has them: the forward pass under
``torch.autocast`` (bf16, fp16), the loss from the float32 logits outside it, float16 gradients
through a ``torch.amp.GradScaler``; tf32 is cuBLAS's and cuDNN's ``allow_tf32``.
"""

from __future__ import annotations

from typing import final

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnist_bench.common import weights
from mnist_bench.common.interface import Backend, DeviceUnavailable
from mnist_bench.backends.torch_backend.spec import SPEC
from mnist_bench.common.model import NUM_CLASSES, POOLED_SIZE


class UniformDropout(nn.Dropout):
    """Inverted dropout with its mask drawn as ``rand >= p``: the same distribution as
    ``nn.Dropout``, but PyTorch's CPU ``bernoulli_`` costs about 3 ms per call at this
    size, 7% of a training step here (bench/README.md). Used by the tuned mode only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        # Uniforms in float32 whatever x is: a bfloat16 uniform has 8 significant bits.
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        return x * (keep.to(x.dtype) * (1.0 / (1.0 - self.p)))


class Net(nn.Module):
    def __init__(self, conv1: int, conv2: int, hidden: int, dropout1: float, dropout2: float,
                 dropout: type[nn.Dropout] = nn.Dropout) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1, 3, 1)
        self.conv2 = nn.Conv2d(conv1, conv2, 3, 1)
        self.dropout1 = dropout(dropout1)
        self.dropout2 = dropout(dropout2)
        self.fc1 = nn.Linear(POOLED_SIZE * POOLED_SIZE * conv2, hidden)
        self.fc2 = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return self.fc2(x)


def _torch_device(kind: str) -> torch.device:
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "gpu":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"PyTorch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False; "
                f"CUDA build: {torch.version.cuda or 'none, this is a CPU-only build'})"
            )
        return torch.device("cuda", 0)
    raise DeviceUnavailable(f"PyTorch has no {kind!r} device here (torch_xla is not supported by mnist-bench)")


def state_dict(w: weights.Weights, recipe) -> dict[str, torch.Tensor]:
    """Canonical weights -> a :class:`Net` state dict (kernels to (out, in, kh, kw), dense1 rows to (c, h, w))."""
    c2 = recipe.conv2_filters
    torch_layout = {
        "conv1.weight": w["conv1/kernel"].transpose(3, 2, 0, 1),
        "conv1.bias": w["conv1/bias"],
        "conv2.weight": w["conv2/kernel"].transpose(3, 2, 0, 1),
        "conv2.bias": w["conv2/bias"],
        "fc1.weight": weights.dense1_hwc_to_chw(w["dense1/kernel"], c2).T,
        "fc1.bias": w["dense1/bias"],
        "fc2.weight": w["dense2/kernel"].T,
        "fc2.bias": w["dense2/bias"],
    }
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in torch_layout.items()}


def to_canonical(tensors: dict[str, torch.Tensor], recipe) -> weights.Weights:
    """:class:`Net` parameters (or their gradients), by name -> the canonical layout."""
    t = {k: v.detach().cpu().numpy() for k, v in tensors.items()}
    c2 = recipe.conv2_filters
    return {
        "conv1/kernel": np.ascontiguousarray(t["conv1.weight"].transpose(2, 3, 1, 0)),
        "conv1/bias": t["conv1.bias"],
        "conv2/kernel": np.ascontiguousarray(t["conv2.weight"].transpose(2, 3, 1, 0)),
        "conv2/bias": t["conv2.bias"],
        "dense1/kernel": weights.dense1_chw_to_hwc(t["fc1.weight"].T, c2),
        "dense1/bias": t["fc1.bias"],
        "dense2/kernel": np.ascontiguousarray(t["fc2.weight"].T),
        "dense2/bias": t["fc2.bias"],
    }


def numerics(device: torch.device, compute_dtype: str = "float32") -> dict:
    """PyTorch's settings as they stand: TF32 matters on CUDA only (cuBLAS and cuDNN)."""
    cuda = device.type == "cuda"
    matmul_tf32, conv_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    return {"dtype": "float32", "compute_dtype": compute_dtype, "tf32": cuda and bool(matmul_tf32 or conv_tf32),
            "matmul_precision": torch.get_float32_matmul_precision(),
            "allow_tf32": {"cuda_matmul": bool(matmul_tf32), "cudnn": bool(conv_tf32)} if cuda else None}


def use_tf32(device: torch.device, on: bool) -> None:
    """TF32 on CUDA only where the precision asks for it: fp32 is fair float32 (no TF32)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


class MixedPrecision:
    """One precision, applied PyTorch's way: ``autocast()`` around the forward pass, ``scaler`` for float16."""

    def __init__(self, device: torch.device, precision) -> None:
        self.device = device
        self.dtype = getattr(torch, precision.compute_dtype)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision.loss_scaling)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def compute_dtype(self, conv: nn.Conv2d) -> str:
        """What a convolution computes in under :meth:`autocast`, read back from PyTorch."""
        with torch.no_grad(), self.autocast():
            out = conv(torch.zeros(1, conv.in_channels, 3, 3, device=self.device))
        return str(out.dtype).removeprefix("torch.")


def images(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """(..., 28, 28) NumPy -> (..., 1, 28, 28) on ``device``: channels-first."""
    return torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(-3).to(device, non_blocking=True)


def labels(y: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device, non_blocking=True)


@final
class TorchBackend(Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.modes
    precisions = SPEC.precisions

    def _build(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)
        self._device = _torch_device(self.device)
        use_tf32(self._device, self.precision.tf32)
        torch.manual_seed(self.seed)
        r = self.recipe
        dropout = UniformDropout if self.mode == "tuned" else nn.Dropout
        self.model = Net(r.conv1_filters, r.conv2_filters, r.hidden, r.dropout1, r.dropout2, dropout).to(self._device)
        self._forward = torch.compile(self.model) if self.mode == "compiled" else self.model
        self._mixed = MixedPrecision(self._device, self.precision)
        self._compute_dtype = self._mixed.compute_dtype(self.model.conv1)
        self._new_optimizer()

    def _new_optimizer(self) -> None:
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=self.recipe.learning_rate, momentum=self.recipe.momentum
        )

    def load_weights(self, canonical: weights.Weights) -> None:
        self.model.load_state_dict(state_dict(weights.check(canonical, self.recipe), self.recipe))
        self._new_optimizer()

    def _to_canonical(self, tensors: dict[str, torch.Tensor]) -> weights.Weights:
        return to_canonical(tensors, self.recipe)

    def export_weights(self) -> weights.Weights:
        return self._to_canonical(dict(self.model.named_parameters()))

    def _images(self, x: np.ndarray) -> torch.Tensor:
        return images(x, self._device)

    def _labels(self, y: np.ndarray) -> torch.Tensor:
        return labels(y, self._device)

    def _loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss in float32, from the forward pass in the run's precision."""
        with self._mixed.autocast():
            logits = self._forward(images)
        return F.cross_entropy(logits.float(), labels)

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        self.model.train()
        images, labels = self._images(x), self._labels(y)
        scaler = self._mixed.scaler
        losses = []
        for xb, yb in zip(images, labels):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._loss(xb, yb)
            if scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(self.optimizer)
                scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses).cpu().numpy()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        self.model.eval()
        self.model.zero_grad(set_to_none=True)
        loss = self._loss(self._images(x), self._labels(y))
        scale = self._mixed.scaler.get_scale() if self._mixed.scaler.is_enabled() else 1.0
        (loss * scale).backward()
        grads = {name: p.grad / scale for name, p in self.model.named_parameters()}
        return float(loss.item()), self._to_canonical(grads)

    @torch.no_grad()
    def _logits(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        with self._mixed.autocast():
            logits = self._forward(self._images(x))
        return logits.float().cpu().numpy()

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__, "cuda": torch.version.cuda or "", "cudnn": str(torch.backends.cudnn.version() or "")}

    def device_info(self) -> dict:
        if self._device.type == "cuda":
            return {"kind": "gpu", "name": torch.cuda.get_device_name(self._device), "count": torch.cuda.device_count()}
        return {"kind": "cpu", "name": "cpu", "count": 1, "threads": torch.get_num_threads()}

    def numerics(self) -> dict:
        return numerics(self._device, self._compute_dtype)

    def peak_device_memory(self) -> int | None:
        return int(torch.cuda.max_memory_allocated(self._device)) if self._device.type == "cuda" else None
