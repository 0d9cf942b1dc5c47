"""The Flax NNX implementation, described for the registry (imports no framework)."""

from mnist_bench.common.spec import ImplementationSpec

SPEC = ImplementationSpec(
    name="flax-nnx",
    package="mnist_bench.backends.flax_nnx_backend",
    description="JAX with a Flax NNX module, nnx.Optimizer and an nnx.jit step, as Flax's NNX MNIST example does",
    backend="backend:FlaxNnxBackend",
    # nnx-jit: the example's @nnx.jit step; cached-partial and split-merge: the two remedies of Flax's
    # performance guide for nnx.jit's per-call Python graph walk; tuned: split-merge, a lax.scan per chunk
    # and the CPU's patch-matmul convolutions (backend.py says what each does).
    modes=("nnx-jit", "cached-partial", "split-merge", "tuned"),
    default_mode="nnx-jit",
    fastest_mode="tuned",
    precisions=("fp32", "bf16", "tf32"),  # layers' dtype / param_dtype; no fp16: Flax has no loss scaling
    layer="Flax NNX",
    layer_over="flax-linen",  # the same model in Flax's older API, on the same JAX, XLA and optax
    requires=("jax", "flax", "optax"),
    devices=("cpu", "gpu", "tpu"),
    install="pip install -c constraints.txt -e '.[jax]'",
    data_parallel="mesh:FlaxNnxMeshBackend",  # jax.sharding over a device mesh, as flax-linen
    data_parallel_modes=("nnx-jit", "split-merge"),
    virtual_cpu_devices=True,
    plain_loop="plain_loop:LOOPS",  # mode -> the plain NNX loop Flax users write (bench/perf/overhead.py)
    matmul_probe="probes:matmul_probe",  # JAX's, as the Linen implementation's
    profiler="profiler:profile",
    # XLA takes 75 % of GPU memory at start unless told not to.
    env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
)
