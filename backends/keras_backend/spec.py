"""Keras 3 on each of its backends, described for the registry (imports no framework).

One folder, one backend class, three implementations: ``keras-jax``, ``keras-torch`` and
``keras-tensorflow``. Each sets ``KERAS_BACKEND`` in its spec's ``env``, which the worker applies
before anything is imported, so every run imports Keras on one framework only, in its own process.

Modes are Keras's ``jit_compile`` setting, the one knob Keras users turn for speed: ``fit`` is
Keras's default (``jit_compile="auto"``, resolved per framework and device by Keras: JAX jits,
PyTorch runs eagerly, TensorFlow uses XLA on a GPU and a plain ``tf.function`` on a CPU; the
record's ``numerics.keras`` says what it resolved to), and ``fit-jit``/``fit-nojit`` ask for
``jit_compile=True``/``False`` where that differs from ``auto`` on some device.
"""

from mnist_bench.common.spec import ImplementationSpec

PACKAGE = "mnist_bench.backends.keras_backend"
# mode -> the jit_compile value model.compile gets.
JIT_COMPILE = {"fit": "auto", "fit-jit": True, "fit-nojit": False}


def _spec(framework: str, modes: tuple[str, ...], what: str, requires: tuple[str, ...], extra: str, native: str,
          distribution: str, env: dict[str, str] | None = None, devices: tuple[str, ...] = ("cpu", "gpu"),
          **parallel) -> ImplementationSpec:  # parallel: the data-parallel fields, where Keras has an engine
    return ImplementationSpec(
        name=f"keras-{framework}",
        package=PACKAGE,
        description=f"Keras 3 on {what}: a keras.Sequential model trained with model.compile + model.fit; "
                    + distribution,
        backend="backend:KerasBackend",
        modes=modes,
        default_mode="fit",
        layer="Keras",
        layer_over=native,  # the same framework written natively: what Keras costs over it
        requires=("keras", *requires),
        install=f"pip install -c constraints.txt -e '.[{extra}]'",
        devices=devices,
        plain_loop="plain_loop:LOOPS",  # mode -> a plain model.fit loop (bench/perf/overhead.py)
        matmul_probe=f"on_{framework}:matmul_probe",  # the framework underneath times the peak
        env={"KERAS_BACKEND": framework, **(env or {})},
        # Keras's dtype policies (mixed_bfloat16, mixed_float16 with its LossScaleOptimizer) on every framework.
        precisions=("fp32", "bf16", "fp16", "tf32"),
        **parallel,
    )


# auto -> jit_compile=True everywhere on JAX; fit-nojit runs the same step op by op.
KERAS_JAX = _spec("jax", ("fit", "fit-nojit"), "JAX", ("jax",), "jax", "flax-linen",
                  "data-parallel with Keras's own keras.distribution.DataParallel (several hosts through "
                  "keras.distribution.initialize, i.e. jax.distributed)",
                  env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}, devices=("cpu", "gpu", "tpu"),
                  data_parallel="data_parallel:KerasDataParallelBackend", data_parallel_modes=("fit",),
                  virtual_cpu_devices=True)
# auto -> jit_compile=False (eager) everywhere on PyTorch; fit-jit is torch.compile.
KERAS_TORCH = _spec("torch", ("fit", "fit-jit"), "PyTorch", ("torch",), "torch", "torch",
                    "no data-parallel run: Keras 3.15's keras.distribution has no PyTorch backend "
                    "(keras/src/backend sets distribution_lib = None for torch)")
# auto -> False (tf.function without XLA) on a CPU, True (XLA) on a GPU: both values are offered.
KERAS_TENSORFLOW = _spec("tensorflow", ("fit", "fit-jit", "fit-nojit"), "TensorFlow", ("tensorflow",), "tensorflow",
                         "tensorflow",
                         "no data-parallel run: Keras 3.15's keras.distribution is JAX-only (its TensorFlow "
                         "distribution_lib is a prototype marked 'DO NOT USE'); TensorFlow's own "
                         "tf.distribute.MirroredStrategy does train this model.fit (checked on 2 logical CPUs: "
                         "the one-device losses), but is not built here",
                         env={"TF_FORCE_GPU_ALLOW_GROWTH": "true", "TF_CPP_MIN_LOG_LEVEL": "2"})
SPECS = {spec.name: spec for spec in (KERAS_JAX, KERAS_TORCH, KERAS_TENSORFLOW)}
