"""PyTorch's profiler hook for :mod:`mnist_bench.bench.perf.profile`: ``torch.profiler`` by ATen operator (self CPU time)."""

from __future__ import annotations


def profile(mode: str, recipe, xs, ys, steps: int) -> list[tuple[str, float]]:
    """Self CPU ms per step by ATen operator: ``steps`` steps warmed on the first half of xs/ys, profiled on the second."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from mnist_bench.backends.torch_backend.backend import TorchBackend

    backend = TorchBackend(recipe, device="cpu", mode=mode, seed=0)
    backend.train_chunk(xs[:steps], ys[:steps])
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        backend.train_chunk(xs[steps:], ys[steps:])
    rows = [(e.key, e.self_cpu_time_total / 1e3 / steps) for e in prof.key_averages()]
    return sorted(rows, key=lambda r: -r[1])
