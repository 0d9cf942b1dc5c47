"""The Flax Linen implementation, described for the registry (imports no framework).

Named ``flax-linen`` beside ``flax-nnx``: the two differ only in the Flax API the model is
written with (the same JAX, XLA and optax underneath), and the names say so. Records written
before the rename say ``jax``, which stays an alias.
"""

from mnist_bench.common.spec import ImplementationSpec

SPEC = ImplementationSpec(
    name="flax-linen",
    aliases=("jax",),  # its name until the NNX implementation arrived; old records and commands use it
    package="mnist_bench.backends.flax_linen_backend",
    description="JAX with a Flax Linen module and optax, as Flax's Linen MNIST example does",
    backend="backend:FlaxLinenBackend",
    modes=("eager", "compiled", "tuned"),
    default_mode="compiled",
    fastest_mode="tuned",
    precisions=("fp32", "bf16", "tf32"),  # layers' dtype / param_dtype; no fp16: Flax has no loss scaling
    requires=("jax", "flax", "optax"),
    devices=("cpu", "gpu", "tpu"),
    install="pip install -c constraints.txt -e '.[jax]'",
    data_parallel="mesh:FlaxLinenMeshBackend",  # jax.sharding over a device mesh
    data_parallel_modes=("compiled",),
    virtual_cpu_devices=True,
    plain_loop="plain_loop:LOOPS",  # mode -> the framework example's own loop (bench/perf/overhead.py)
    matmul_probe="probes:matmul_probe",
    profiler="profiler:profile",
    # XLA takes 75 % of GPU memory at start unless told not to.
    env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
)
