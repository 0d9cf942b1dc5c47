"""The PyTorch matmul probe for :mod:`mnist_bench.bench.perf.device_peak`: square float32 ``torch.matmul``
on the run's device, with the numerics the backend uses, synchronised by a host read."""

from __future__ import annotations

from typing import Callable

OPERATION = "torch.matmul"


def matmul_probe(n: int, device: str) -> tuple[str, Callable[[int], None]]:
    import torch

    dev = torch.device("cuda", 0) if device == "gpu" else torch.device("cpu")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=generator, dtype=torch.float32).to(dev)
    b = torch.randn(n, n, generator=generator, dtype=torch.float32).to(dev)
    out = torch.empty(n, n, dtype=torch.float32, device=dev)

    def block(k: int) -> None:
        for _ in range(k):
            torch.matmul(a, b, out=out)
        out[0, 0].item()  # to the host: synchronises the device

    return OPERATION, block
