"""What mnist-bench needs to know about this implementation; importing it imports no framework."""

from mnist_bench import ImplementationSpec

SPEC = ImplementationSpec(
    name="torch-func",
    package="mnist_bench_torch_func",
    description="PyTorch written functionally: parameters in a dict, torch.func.grad, SGD by hand",
    backend="backend:TorchFuncBackend",
    modes=("functional",),
    default_mode="functional",
    requires=("torch",),
    install="pip install -e examples/torch-func",
    devices=("cpu", "gpu"),
)
