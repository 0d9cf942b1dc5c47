"""The NumPy oracle, described for the registry (imports no framework, nor NumPy)."""

from mnist_bench.common.spec import ImplementationSpec

SPEC = ImplementationSpec(
    name="numpy",
    package="mnist_bench.backends.numpy_backend",
    description="NumPy in float64: forward and backward written from the mathematics, the reference for parity",
    backend="backend:NumpyBackend",
    # float64 is the oracle; float32 runs the same code in float32, to isolate float32 rounding.
    modes=("float64", "float32"),
    default_mode="float64",
    # Below fp32, mode float32 emulates each precision's rounding: the reference for parity in that precision.
    precisions=("fp32", "bf16", "fp16", "tf32"),
    requires=("numpy",),
    install="pip install -e .",
    devices=("cpu",),
    oracle=True,
    accuracy_parity=False,  # about 1 s a step: an epoch of 937 steps is too slow for that test
)
