"""The TensorFlow matmul probe for :mod:`mnist_bench.bench.perf.device_peak`: square float32 ``tf.linalg.matmul``
on the run's device, with the numerics the backend uses, synchronised by a host read."""

from __future__ import annotations

from typing import Callable

OPERATION = "tf.linalg.matmul"


def matmul_probe(n: int, device: str) -> tuple[str, Callable[[int], None]]:
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)
    name = "/GPU:0" if device == "gpu" else "/CPU:0"
    with tf.device(name):
        a = tf.random.stateless_normal((n, n), seed=(0, 0), dtype=tf.float32)
        b = tf.random.stateless_normal((n, n), seed=(0, 1), dtype=tf.float32)

    def block(k: int) -> None:
        with tf.device(name):
            out = None
            for _ in range(k):
                out = tf.linalg.matmul(a, b)
            out[0, 0].numpy()

    return OPERATION, block
