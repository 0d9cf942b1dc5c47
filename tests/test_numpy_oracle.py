"""The NumPy oracle (backends/numpy_backend): its gradients against finite differences, its numbers
against PyTorch and against itself in float32, its optimiser, its dropout and its weight layout.

Every tolerance stands next to the figure measured on this project's 2-core CPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_bench.backends.numpy_backend import model
from mnist_bench.backends.numpy_backend.backend import NumpyBackend
from mnist_bench.common import datasets, pipeline, weights
from mnist_bench.common.interface import DeviceUnavailable
from mnist_bench.common.recipe import Recipe

NO_DROPOUT = Recipe(dropout1=0.0, dropout2=0.0)


@pytest.fixture(scope="module")
def mnist(shared_data_dir):
    return pipeline.prepare(datasets.load("mnist", shared_data_dir, download=False), NO_DROPOUT)


@pytest.fixture(scope="module")
def batch(mnist):
    """The first training batch of 64 in the seeded order (what the parity checks use)."""
    return next(pipeline.train_batches(mnist, NO_DROPOUT, seed=0, epoch=0))


def _params(dtype=np.float64) -> dict[str, np.ndarray]:
    return {k: v.astype(dtype) for k, v in weights.init(NO_DROPOUT, 0).items()}


def _relative(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| over the tensor, relative to the tensor's largest |ref| entry."""
    return float(np.abs(np.asarray(a, np.float64) - ref).max() / np.abs(ref).max())


# --- (1) the backward pass against central finite differences ---------------------------------

FD_EPS = 1e-6
# Measured: 2.0e-8 at most over all eight tensors (float64, eps 1e-6: rounding ~ 1e-16 * loss / eps
# and truncation ~ eps^2 are both far below). At eps 1e-5 a conv1 weight crossed a ReLU kink and
# the error jumped to 1.4e-2; a wrong gradient formula gives errors of order 1.
FD_TOLERANCE = 1e-6
FD_SAMPLES = 200


def _pattern(cache: model.Cache) -> tuple[np.ndarray, ...]:
    """Every piecewise decision of the forward pass: the ReLU signs and the max-pool choices."""
    return cache.a1 > 0, cache.a2 > 0, cache.pool_choice, cache.a3 > 0


def test_gradients_match_central_finite_differences():
    # Uniform random pixels, not MNIST: MNIST's constant background makes exact max-pool ties
    # and exactly-zero ReLU inputs, where the loss is not differentiable and a difference
    # quotient straddles a kink. Random inputs have neither (with probability 1), and the test
    # checks that no perturbation changed a ReLU sign or a pool choice, so every quotient was
    # taken on one smooth piece of the loss.
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 28, 28))
    y = np.array([3, 7])
    params = _params()
    logits, cache = model.forward(params, x)
    grads = model.backward(params, logits, y, cache)
    base = _pattern(cache)
    assert set(grads) == set(params)
    errors, crossed = {}, 0
    for name, tensor in params.items():
        flat = tensor.reshape(-1)  # a view: perturbations reach params
        coords = rng.choice(flat.size, min(FD_SAMPLES, flat.size), replace=False)
        numeric = np.empty(len(coords))
        for n, k in enumerate(coords):
            original = flat[k]
            values = []
            for sign in (1, -1):
                flat[k] = original + sign * FD_EPS
                shifted_logits, shifted = model.forward(params, x)
                values.append(float(model.loss(shifted_logits, y)))
                crossed += not all(np.array_equal(a, b) for a, b in zip(_pattern(shifted), base))
            flat[k] = original
            numeric[n] = (values[0] - values[1]) / (2 * FD_EPS)
        analytic = grads[name].reshape(-1)[coords]
        errors[name] = float(np.abs(numeric - analytic).max() / np.abs(grads[name]).max())
    assert crossed == 0, f"{crossed} perturbations crossed a ReLU kink or a pool tie; pick another input seed"
    assert max(errors.values()) < FD_TOLERANCE, errors


# --- (2) agreement with PyTorch (float32) and with the oracle's own float32 mode ------------------

# Measured against the float64 oracle on 256 test images and the first training batch:
#   torch eager (float32): logits 4.4e-8, loss 1.6e-8, gradients 2.8e-6 (conv1/kernel)
#   numpy float32:         logits 6.7e-8, loss 2.5e-7, gradients 2.9e-6 (conv1/bias)
# Logits are ~0.14 and the loss 2.31: the bounds are float32 rounding (eps 6e-8 relative)
# grown over 9,216-term sums, with a margin of 7-15x.
LOGITS_TOLERANCE = 1e-6  # max |logit difference|
LOSS_TOLERANCE = 2e-6  # |loss difference|, about 8 float32 ulps at 2.3
GRADS_TOLERANCE = 2e-5  # per tensor, relative to its largest gradient entry


@pytest.fixture(scope="module")
def oracle_numbers(mnist, batch):
    backend = NumpyBackend(NO_DROPOUT, mode="float64", seed=0)
    return backend.logits(mnist.test_x[:256]), *backend.loss_and_grads(*batch)


def _assert_close_to_oracle(numbers, oracle_numbers, dtype):
    logits, loss, grads = numbers
    ref_logits, ref_loss, ref_grads = oracle_numbers
    assert logits.dtype == dtype and all(g.dtype == dtype for g in grads.values())
    assert ref_logits.dtype == np.float64 and all(g.dtype == np.float64 for g in ref_grads.values())
    assert np.abs(logits - ref_logits).max() < LOGITS_TOLERANCE
    assert abs(loss - ref_loss) < LOSS_TOLERANCE
    assert set(grads) == set(ref_grads)
    errors = {k: _relative(grads[k], ref_grads[k]) for k in ref_grads}
    assert max(errors.values()) < GRADS_TOLERANCE, errors


def test_torch_float32_agrees_with_the_float64_oracle(mnist, batch, oracle_numbers):
    from mnist_bench.backends.torch_backend.backend import TorchBackend

    torch_backend = TorchBackend(NO_DROPOUT, mode="eager", seed=0)
    numbers = (torch_backend.logits(mnist.test_x[:256]), *torch_backend.loss_and_grads(*batch))
    _assert_close_to_oracle(numbers, oracle_numbers, np.float32)


def test_float32_mode_agrees_with_float64_mode(mnist, batch, oracle_numbers):
    backend = NumpyBackend(NO_DROPOUT, mode="float32", seed=0)
    assert backend.numerics() == {"dtype": "float32", "compute_dtype": "float32", "tf32": False,
                                  "matmul_precision": "highest"}
    numbers = (backend.logits(mnist.test_x[:256]), *backend.loss_and_grads(*batch))
    _assert_close_to_oracle(numbers, oracle_numbers, np.float32)
    # ... and it really is float32: the difference is float32 rounding, not zero.
    assert np.abs(numbers[0] - oracle_numbers[0]).max() > 0


def test_few_sgd_steps_agree_with_torch(batch):
    # Five steps on one batch, dropout off: the same momentum formula gives the same path.
    # Measured: losses 2.4e-7 apart (one float32 ulp at 2.3: both return float32 losses), weights
    # 4.5e-8; dropping the momentum term moves the weights by 2.3e-3 within these five steps.
    from mnist_bench.backends.torch_backend.backend import TorchBackend

    xs, ys = np.stack([batch[0]] * 5), np.stack([batch[1]] * 5)
    oracle = NumpyBackend(NO_DROPOUT, mode="float64", seed=0)
    torch_backend = TorchBackend(NO_DROPOUT, mode="eager", seed=0)
    oracle_losses, torch_losses = oracle.train_chunk(xs, ys), torch_backend.train_chunk(xs, ys)
    assert oracle_losses[-1] < oracle_losses[0] - 0.01  # it learned
    assert np.abs(oracle_losses - torch_losses).max() < 1e-6
    final, torch_final = oracle.export_weights(), torch_backend.export_weights()
    assert max(float(np.abs(final[k] - torch_final[k]).max()) for k in final) < 1e-6


# --- (3) the weight layout -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["float64", "float32"])
def test_load_then_export_is_exact(mode):
    backend = NumpyBackend(NO_DROPOUT, mode=mode, seed=0)
    canonical = weights.init(NO_DROPOUT, 7)
    backend.load_weights(canonical)
    exported = backend.export_weights()
    assert set(exported) == set(canonical)
    for name, value in canonical.items():
        assert exported[name].dtype == np.dtype(mode)
        assert exported[name].shape == value.shape
        assert np.array_equal(exported[name], value), name
    # Export hands out copies: changing them must not change the model.
    exported["dense2/bias"][:] = 99
    assert np.array_equal(backend.export_weights()["dense2/bias"], canonical["dense2/bias"])


def test_dense1_rows_are_in_hwc_order():
    # One dense1 input row set to 1 and everything else zeroed except what reaches it: the canonical
    # row (h * 12 + w) * C2 + c must read the pooled map at (h, w), channel c.
    params = {k: np.zeros_like(v) for k, v in _params().items()}
    h, w, c = 5, 7, 3
    params["conv2/bias"][c] = 1.0  # conv2 outputs 1 in channel c everywhere, pooled to 1
    params["dense1/kernel"][(h * 12 + w) * 64 + c, 0] = 2.0
    params["dense2/kernel"][0, 0] = 1.0
    logits, _ = model.forward(params, np.zeros((1, 28, 28)))
    assert logits[0, 0] == 2.0 and np.all(logits[0, 1:] == 0)
    params["dense1/kernel"][(h * 12 + w) * 64 + c, 0] = 0.0
    params["dense1/kernel"][(c * 12 + h) * 12 + w, 0] = 2.0  # the (c, h, w) row instead: channel 0, not c
    assert model.forward(params, np.zeros((1, 28, 28)))[0][0, 0] == 0.0


def test_rejects_devices_other_than_the_cpu():
    with pytest.raises(DeviceUnavailable, match="CPU only"):
        NumpyBackend(NO_DROPOUT, device="gpu", mode="float64")
    backend = NumpyBackend(NO_DROPOUT, mode="float64")
    assert backend.device_info()["kind"] == "cpu"
    assert backend.peak_device_memory() is None
    assert backend.versions() == {"numpy": np.__version__}
    assert backend.numerics() == {"dtype": "float64", "compute_dtype": "float64", "tf32": False,
                                  "matmul_precision": "highest"}


# --- (4) one SGD step by hand --------------------------------------------------------------------

def test_sgd_steps_follow_the_momentum_formula(batch):
    x, y = batch[0][:16], batch[1][:16]
    x2, y2 = batch[0][16:32], batch[1][16:32]
    r = NO_DROPOUT
    backend = NumpyBackend(r, mode="float64", seed=0)
    w0 = backend.export_weights()
    _, g0 = backend.loss_and_grads(x, y)
    backend.train_chunk(x[None], y[None])
    w1 = backend.export_weights()
    _, g1 = backend.loss_and_grads(x2, y2)
    backend.train_chunk(x2[None], y2[None])
    w2 = backend.export_weights()
    for name in w0:
        v1 = g0[name]  # the velocity starts at zero: v = 0.5 * 0 + g
        v2 = r.momentum * v1 + g1[name]
        # The same float operations in the same order as the backend: equal to the last bit.
        np.testing.assert_array_equal(w1[name], w0[name] - r.learning_rate * v1)
        np.testing.assert_array_equal(w2[name], w1[name] - r.learning_rate * v2)
        # The momentum term is really there: without it the second step lands elsewhere.
        assert not np.allclose(w2[name], w1[name] - r.learning_rate * g1[name], rtol=0, atol=1e-9)
    # load_weights resets the velocity: the first step after it is plain gradient descent again.
    backend.load_weights(w0)
    backend.train_chunk(x[None], y[None])
    for name, value in backend.export_weights().items():
        np.testing.assert_array_equal(value, w1[name])


# --- (5) dropout ----------------------------------------------------------------------------------

def test_dropout_masks_drop_the_recipe_rate_and_rescale(batch):
    recipe = Recipe()
    params = _params()
    _, cache = model.forward(params, batch[0], np.random.default_rng(0), (recipe.dropout1, recipe.dropout2))
    for mask, rate in ((cache.mask1, recipe.dropout1), (cache.mask2, recipe.dropout2)):
        dropped = float(np.mean(mask == 0))
        # 589,824 and 8,192 mask entries: 5 standard deviations are 0.0028 and 0.028.
        assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / mask.size)
        assert np.all((mask == 0) | (mask == 1 / (1 - rate)))
    _, no_dropout = model.forward(params, batch[0])
    assert no_dropout.mask1 is None and no_dropout.mask2 is None


def test_dropout_training_is_reproducible_from_the_seed(batch):
    x, y = batch[0][:16], batch[1][:16]
    xs, ys = np.stack([x] * 3), np.stack([y] * 3)
    first = NumpyBackend(Recipe(), mode="float64", seed=3).train_chunk(xs, ys)
    again = NumpyBackend(Recipe(), mode="float64", seed=3).train_chunk(xs, ys)
    other_seed = NumpyBackend(Recipe(), mode="float64", seed=4)
    other_seed.load_weights(weights.init(Recipe(), 3))  # same start, different masks
    other = other_seed.train_chunk(xs, ys)
    no_dropout = NumpyBackend(NO_DROPOUT, mode="float64", seed=3).train_chunk(xs, ys)
    assert first.dtype == np.float32 and first.shape == (3,)
    np.testing.assert_array_equal(first, again)
    assert np.all(first != other)
    assert np.all(first != no_dropout)  # dropout is on in training ...
    # ... and off for loss_and_grads: the same number twice, and the dropout-free training loss.
    evaluator = NumpyBackend(Recipe(), mode="float64", seed=3)
    assert evaluator.loss_and_grads(x, y)[0] == evaluator.loss_and_grads(x, y)[0] == pytest.approx(no_dropout[0], abs=1e-6)
    # Masks depend on (seed, step) only, not on how steps are grouped into chunks.
    chunked = NumpyBackend(Recipe(), mode="float64", seed=3)
    np.testing.assert_array_equal(np.concatenate([chunked.train_chunk(xs[:1], ys[:1]),
                                                  chunked.train_chunk(xs[1:], ys[1:])]), first)


# --- max-pool ties on real MNIST ----------------------------------------------------------------

def test_positive_max_pool_ties_do_not_change_the_gradients(batch):
    # The claim in model.py's docstring, measured on the first real batch of 64 with the initial
    # weights: 107,486 of 589,824 pooling windows tie at a *positive* value (the constant
    # background gives identical positive conv2 outputs), yet sending each tie's gradient to the
    # last tied element instead of the first changes no gradient beyond rounding (5e-15 measured):
    # tied elements with the same 5x5 receptive field contribute identically to every parameter.
    params = _params()
    x, y = batch
    logits, cache = model.forward(params, x)
    windows = model._windows(cache.a2)
    top = windows.max(axis=-1)
    positive_ties = int(np.sum((np.sum(windows == top[..., None], axis=-1) > 1) & (top > 0)))
    assert positive_ties > 50_000, positive_ties
    last = 3 - windows[..., ::-1].argmax(axis=-1)
    assert np.sum(last != cache.pool_choice) == positive_ties + int(np.sum(
        (np.sum(windows == top[..., None], axis=-1) > 1) & (top == 0)))
    first_rule = model.backward(params, logits, y, cache)
    last_rule = model.backward(params, logits, y, cache._replace(pool_choice=last))
    errors = {k: _relative(last_rule[k], first_rule[k]) for k in first_rule}
    assert max(errors.values()) < 1e-12, errors
