"""The Keras 3 implementations (backends/keras_backend/): one folder, three isolated implementations.

Their numerical and accuracy parity are in tests/test_parity.py and tests/test_accuracy_parity.py
with every other implementation's; here: what is particular to them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mnist_bench.common import registry

KERAS = ["keras-jax", "keras-torch", "keras-tensorflow"]


def test_keras_step_losses_from_running_means():
    from mnist_bench.backends.keras_backend.running_mean import step_losses

    losses = np.random.default_rng(0).uniform(0.05, 2.5, 937).astype(np.float32)
    # What Keras logs after each step: the float32 running mean of the epoch's losses so far.
    means = [float(m) for m in (np.cumsum(losses, dtype=np.float64) / np.arange(1, 938)).astype(np.float32)]
    whole = np.concatenate([step_losses(means[:1], 0), step_losses(means[:21], 1), step_losses(means, 21)])
    assert whole.dtype == np.float32 and len(whole) == 937
    # Exact up to the float32 rounding of the mean, which the count multiplies: k * 2^-24 * mean.
    bound = np.arange(1, 938) * 2.0 ** -24 * np.asarray(means) * 2
    assert np.all(np.abs(whole - losses) <= bound + 1e-7)
    assert abs(float(np.mean(whole, dtype=np.float64)) - means[-1]) < 1e-6  # the epoch mean Keras reports



def test_each_keras_implementation_names_its_own_keras_backend():
    assert {name: registry.spec(name).env["KERAS_BACKEND"] for name in KERAS} == {
        "keras-jax": "jax", "keras-torch": "torch", "keras-tensorflow": "tensorflow"}
    # A process that may import several frameworks cannot choose one Keras backend for all of them.
    assert "KERAS_BACKEND" not in registry.all_env()


def test_a_keras_implementation_loaded_on_the_wrong_keras_backend_is_refused():
    code = ("import os; os.environ['KERAS_BACKEND'] = 'tensorflow'; import keras\n"
            "from mnist_bench.common import registry\n"
            "try:\n    registry.load_backend('keras-jax')\nexcept RuntimeError as exc:\n    print(exc)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert "'keras-jax' loaded as 'keras-tensorflow'" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.timeout(2400)  # the fixture trains every implementation for an epoch when this runs alone
def test_fit_runs_through_the_harness_and_records_what_jit_compile_became(one_epoch):
    # The session's one real epoch per implementation (tests/one_epoch.py), in Keras's default mode.
    # Keras resolves jit_compile="auto" itself (keras/src/trainers/trainer.py): JAX jits; PyTorch runs
    # eagerly; TensorFlow uses XLA only when it sees a GPU.
    resolved = {name: one_epoch[name]["numerics"]["keras"]["jit_compile_resolved"] for name in KERAS}
    assert resolved == {"keras-jax": True, "keras-torch": False, "keras-tensorflow": False}
    chunked = one_epoch["torch"]  # trained through train_chunk: the chunks model.fit's callback must reproduce
    for name in KERAS:
        run = one_epoch[name]
        assert run["mode"] == "fit" and run["numerics"]["keras"]["jit_compile"] == "auto"
        assert run["epochs"][0]["steps"] == chunked["epochs"][0]["steps"] == 60_000 // 64
        # Chunked as on the chunk path: the lone first step and the first chunk are not steady.
        assert run["timing"]["first_step_s"] > 0
        assert run["timing"]["steady_chunks"] == chunked["timing"]["steady_chunks"] == 46  # of 937 steps: 1, 46 x 20, 16; all but the first two
        assert np.isfinite(run["epochs"][0]["train_loss"]) and run["epochs"][0]["test_accuracy"] > 0.9
