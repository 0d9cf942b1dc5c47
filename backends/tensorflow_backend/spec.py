"""The TensorFlow/Keras implementation, described for the registry (imports no framework)."""

from mnist_bench.common.spec import ImplementationSpec

SPEC = ImplementationSpec(
    name="tensorflow",
    package="mnist_bench.backends.tensorflow_backend",
    description="TensorFlow (GradientTape): a tf.keras model trained by a custom tf.GradientTape step, as "
                "TensorFlow's quickstart does (Keras's own model.fit on TensorFlow is keras-tensorflow)",
    backend="backend:TensorFlowBackend",
    modes=("eager", "compiled", "xla", "tuned"),
    default_mode="compiled",
    fastest_mode="tuned",
    precisions=("fp32", "bf16", "tf32"),  # the Keras dtype policy; no fp16 (no loss scaling in the custom step)
    requires=("tensorflow", "keras"),
    install="pip install -c constraints.txt -e '.[tensorflow]'",
    data_parallel="mirrored:TensorFlowMirroredBackend",  # tf.distribute Mirrored / MultiWorkerMirrored
    data_parallel_modes=("compiled",),
    plain_loop="plain_loop:LOOPS",  # mode -> the framework example's own loop (bench/perf/overhead.py)
    matmul_probe="probes:matmul_probe",
    # TensorFlow grabs all GPU memory at start unless told not to, and logs every kernel choice.
    env={"TF_FORCE_GPU_ALLOW_GROWTH": "true", "TF_CPP_MIN_LOG_LEVEL": "2"},
)
