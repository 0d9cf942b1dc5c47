"""Two bf16 runs that train and look plausible but are not what bf16 allows, planted in PyTorch.

``python tests/planted_precision.py INPUTS WORK`` probes, as ``mnist-bench parity`` would (from the
parity inputs INPUTS), PyTorch's eager bf16 run with one fault each, and writes ``WORK/<label>.npz``:

* ``torch-fp8-dense1-bf16``: dense1 silently computes in float8 (e4m3), a lower precision than every
  other layer and every other framework (straight-through, so it still trains);
* ``torch-bf16-loss-bf16``: the loss is taken from the bfloat16 logits in bfloat16, skipping the float32
  loss every framework's mixed-precision guide asks for.

tests/test_parity.py checks that the oracle's bf16 rule fails both. A subprocess, so that the test
process never imports a framework.
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from mnist_bench.backends.torch_backend.backend import TorchBackend
from mnist_bench.bench.checks.parity import probe_backend
from mnist_bench.bench.checks.probe import parity_recipe

LABELS = ("torch-fp8-dense1-bf16", "torch-bf16-loss-bf16")


def bf16_torch() -> TorchBackend:
    return TorchBackend(parity_recipe(), device="cpu", mode="eager", seed=0, threads=1, precision="bf16")


def fp8_dense1() -> TorchBackend:
    backend = bf16_torch()

    def to_fp8(module, inputs, out):
        return out + (out.to(torch.float8_e4m3fn).to(out.dtype) - out).detach()

    backend.model.fc1.register_forward_hook(to_fp8)
    return backend


def bf16_loss() -> TorchBackend:
    backend = bf16_torch()

    def loss(images, labels):
        with backend._mixed.autocast():
            logits = backend._forward(images)
        # bfloat16 logits in, the loss computed in bfloat16 (only its value is handed on as float32)
        return F.cross_entropy(logits, labels).float()

    backend._loss = loss
    return backend


def main(inputs: Path, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for label, build in zip(LABELS, (fp8_dense1, bf16_loss)):
        probe_backend(build(), inputs, work / f"{label}.npz", mover=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
