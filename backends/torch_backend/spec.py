"""The PyTorch implementation, described for the registry (imports no framework)."""

from mnist_bench.common.spec import ImplementationSpec

SPEC = ImplementationSpec(
    name="torch",
    package="mnist_bench.backends.torch_backend",
    description="PyTorch: an nn.Module trained as pytorch/examples mnist does",
    backend="backend:TorchBackend",
    # eager is what pytorch/examples writes; tuned is the fastest way found for this model (bench/README.md).
    modes=("eager", "compiled", "tuned"),
    default_mode="eager",
    fastest_mode="tuned",
    precisions=("fp32", "bf16", "fp16", "tf32"),  # torch.autocast, GradScaler for fp16, allow_tf32
    requires=("torch",),
    install="pip install -c constraints.txt -e '.[torch]'",
    data_parallel="ddp:TorchDDPBackend",  # torch.distributed DDP, one process per device
    data_parallel_modes=("eager",),
    one_process_per_device=True,
    plain_loop="plain_loop:LOOPS",  # mode -> the framework example's own loop (bench/perf/overhead.py)
    matmul_probe="probes:matmul_probe",
    profiler="profiler:profile",
    known_broken={
        # Found by the parity tests; details and a minimal reproducer in docs/framework-bugs.md.
        ("compiled", "cpu"): (
            "torch.compile (Inductor, CPU) in torch 2.13 returns zero gradients for both conv layers of this "
            "model at batch 64: the convolutions never train (docs/framework-bugs.md)"
        ),
    },
)
