"""Keras 3 on JAX: fit(jit_compile=False) under keras.distribution.DataParallel over 2 XLA host devices
stops on XLA's 40 s all-reduce rendezvous timeout (keras 3.15.1, jax 0.10.2, a 2-core CPU).

Run as ``python docs/repro/keras_jax_eager_data_parallel_deadlock.py [jit]``: without ``jit`` the step
runs op by op and the process aborts ("Termination timeout for `all reduce ...`"); with ``jit``
(Keras's default on JAX) the same fit finishes.
"""
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.distribution.set_distribution(keras.distribution.DataParallel(devices=keras.distribution.list_devices("cpu")))
model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
                          keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(2),
                          keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), jit_compile="jit" in sys.argv[1:],
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
rng = np.random.default_rng(0)
x, y = rng.normal(size=(64 * 10, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, 64 * 10)
model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
print("finished, jit_compile =", model.jit_compile)
