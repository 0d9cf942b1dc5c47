"""Minimal reproducer: torch.compile (Inductor, CPU) drops a conv layer's weight gradient.

conv -> ReLU -> 2x2 max-pool -> flatten -> Linear(9216, 128) -> Linear(128, 10),
batch 64, cross-entropy. Eager and aot_eager give the right gradient; Inductor
gives exactly zero for the conv weight. Batch 8 is fine; removing the pool or
the dense layers makes it go away. Seen with torch 2.13.0+cpu.

    python docs/repro/torch_compile_zero_conv_grad.py [--device cuda]
"""

import sys

import torch
import torch.nn.functional as F

device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
torch.manual_seed(0)
conv = torch.nn.Conv2d(32, 64, 3).to(device)
fc1 = torch.nn.Linear(9216, 128).to(device)
fc2 = torch.nn.Linear(128, 10).to(device)
x = torch.randn(64, 32, 26, 26, device=device)
y = torch.randint(0, 10, (64,), device=device)


def model(t):
    return fc2(fc1(torch.flatten(F.max_pool2d(conv(t).relu(), 2), 1)))


def conv_grad(fn):
    conv.zero_grad()
    F.cross_entropy(fn(x), y).backward()
    return conv.weight.grad.clone()


eager = conv_grad(model)
for backend in ("aot_eager", "inductor"):
    torch._dynamo.reset()
    compiled = conv_grad(torch.compile(model, backend=backend))
    print(f"torch {torch.__version__} {device} {backend:9s}: max|grad| eager {eager.abs().max():.4g}, "
          f"compiled {compiled.abs().max():.4g}, max|difference| {(eager - compiled).abs().max():.4g}")
