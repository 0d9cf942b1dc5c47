"""Canonical weights: shared init, the dense1 feature-order contract, and the .npz format."""

import pathlib

import numpy as np
import pytest

from mnist_bench.common import weights
from mnist_bench.common.recipe import Recipe
from mnist_bench.common.weights import WeightsError

SMALL = Recipe(conv1_filters=4, conv2_filters=6, hidden=16)


# --- init -----------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", [Recipe(), SMALL], ids=["default", "small"])
def test_init_shapes_and_dtype(recipe):
    w = weights.init(recipe, 0)
    expected = weights.shapes(recipe)
    assert set(w) == set(expected)
    for name, shape in expected.items():
        assert w[name].shape == shape, name
        assert w[name].dtype == np.float32, name


def test_shapes_follow_the_recipe():
    s = weights.shapes(SMALL)
    assert s["conv1/kernel"] == (3, 3, 1, 4)
    assert s["conv2/kernel"] == (3, 3, 4, 6)
    assert s["dense1/kernel"] == (12 * 12 * 6, 16)
    assert s["dense2/kernel"] == (16, 10)
    assert weights.shapes(Recipe())["dense1/kernel"] == (9216, 128)


def test_init_deterministic_per_seed():
    a, b = weights.init(SMALL, 7), weights.init(SMALL, 7)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_init_differs_across_seeds():
    a, b = weights.init(SMALL, 0), weights.init(SMALL, 1)
    for name in a:
        assert not np.array_equal(a[name], b[name]), name


@pytest.mark.parametrize("recipe", [Recipe(), SMALL], ids=["default", "small"])
def test_init_bounds(recipe):
    w = weights.init(recipe, 3)
    for layer in ("conv1", "conv2", "dense1", "dense2"):
        kernel = w[f"{layer}/kernel"]
        fan_in = int(np.prod(kernel.shape[:-1]))
        bound = 1.0 / np.sqrt(fan_in)
        for name in (f"{layer}/kernel", f"{layer}/bias"):
            a = w[name]
            assert np.abs(a).max() <= np.float32(bound), name
            # Actually spread over the range, not collapsed near zero.
            assert np.abs(a).max() > 0.5 * bound, name


# --- dense1 feature order ---------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 64])
def test_dense1_permutations_are_inverses(channels):
    rng = np.random.default_rng(channels)
    k = rng.standard_normal((144 * channels, 5)).astype(np.float32)
    chw = weights.dense1_hwc_to_chw(k, channels)
    assert chw.shape == k.shape
    np.testing.assert_array_equal(weights.dense1_chw_to_hwc(chw, channels), k)
    np.testing.assert_array_equal(weights.dense1_hwc_to_chw(weights.dense1_chw_to_hwc(k, channels), channels), k)
    if channels > 1:
        assert not np.array_equal(chw, k)


def test_dense1_hand_built_row_mapping():
    channels, hidden = 3, 2
    # Row r of the canonical kernel holds r in every column.
    k = np.repeat(np.arange(144 * channels, dtype=np.float64)[:, None], hidden, axis=1)
    chw = weights.dense1_hwc_to_chw(k, channels)
    for h in range(12):
        for w in range(12):
            for c in range(channels):
                canonical_row = (h * 12 + w) * channels + c
                assert (chw[c * 144 + h * 12 + w] == canonical_row).all(), (h, w, c)


def test_feature_order_contract_end_to_end():
    """channels-last flatten @ canonical == channels-first flatten @ permuted kernel."""
    rng = np.random.default_rng(0)
    batch, channels, hidden = 4, 5, 7
    f = rng.standard_normal((batch, 12, 12, channels))  # NHWC pooled feature map
    k = rng.standard_normal((144 * channels, hidden))
    nhwc = f.reshape(batch, -1) @ k
    nchw = f.transpose(0, 3, 1, 2).reshape(batch, -1) @ weights.dense1_hwc_to_chw(k, channels)
    np.testing.assert_allclose(nchw, nhwc, rtol=1e-12, atol=1e-12)
    # And the export direction: a channels-first kernel maps back to the canonical one.
    k_chw = rng.standard_normal((144 * channels, hidden))
    np.testing.assert_allclose(
        f.reshape(batch, -1) @ weights.dense1_chw_to_hwc(k_chw, channels),
        f.transpose(0, 3, 1, 2).reshape(batch, -1) @ k_chw,
        rtol=1e-12, atol=1e-12,
    )


# --- save / load / check ----------------------------------------------------------------


def test_save_load_round_trip_exact(tmp_path):
    w = weights.init(SMALL, 5)
    path = weights.save(w, tmp_path / "sub" / "w.npz")
    assert path == tmp_path / "sub" / "w.npz" and path.is_file()
    loaded = weights.load(path, SMALL)
    assert set(loaded) == set(w)
    for name in w:
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], w[name])


def test_save_writes_float32_and_no_tmp_left(tmp_path):
    w = {name: a.astype(np.float64) for name, a in weights.init(SMALL, 1).items()}
    weights.save(w, tmp_path / "w.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
    with np.load(tmp_path / "w.npz", allow_pickle=False) as data:
        assert all(data[name].dtype == np.float32 for name in data.files)


def test_save_overwrites_existing_file(tmp_path):
    path = tmp_path / "w.npz"
    weights.save(weights.init(SMALL, 1), path)
    weights.save(weights.init(SMALL, 2), path)
    np.testing.assert_array_equal(weights.load(path, SMALL)["dense2/bias"], weights.init(SMALL, 2)["dense2/bias"])
    assert not list(tmp_path.glob("*.tmp"))


class _Touch:
    """Unpickling this creates a marker file: proves whether pickle was executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_load_refuses_pickled_object_arrays(tmp_path):
    marker = tmp_path / "unpickled"
    w = dict(weights.init(SMALL, 0))
    w["dense2/bias"] = np.array([_Touch(str(marker))] * 10, dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, **w)  # np.save pickles object arrays by default
    with pytest.raises(WeightsError) as err:
        weights.load(path, SMALL)
    assert str(path) in str(err.value)
    assert not marker.exists()
    # The file really is a pickle payload: loading it with pickle allowed runs it.
    with np.load(path, allow_pickle=True) as data:
        data["dense2/bias"]
    assert marker.exists()


def test_load_missing_file_names_it(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(WeightsError) as err:
        weights.load(path)
    assert str(path) in str(err.value)


def test_load_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(WeightsError, match="junk.npz"):
        weights.load(path)


def test_load_checks_against_recipe(tmp_path):
    path = weights.save(weights.init(SMALL, 0), tmp_path / "w.npz")
    with pytest.raises(WeightsError, match="conv1/kernel"):
        weights.load(path, Recipe())  # default recipe expects 32 filters


def test_check_missing_name():
    w = weights.init(SMALL, 0)
    del w["conv2/bias"]
    with pytest.raises(WeightsError) as err:
        weights.check(w, SMALL)
    assert "conv2/bias" in str(err.value) and "missing" in str(err.value)


def test_check_extra_name():
    w = weights.init(SMALL, 0)
    w["conv3/kernel"] = np.zeros(3, np.float32)
    with pytest.raises(WeightsError) as err:
        weights.check(w, SMALL)
    assert "conv3/kernel" in str(err.value) and "unexpected" in str(err.value)


def test_check_wrong_shape():
    w = weights.init(SMALL, 0)
    w["dense1/kernel"] = w["dense1/kernel"].T
    with pytest.raises(WeightsError) as err:
        weights.check(w, SMALL)
    msg = str(err.value)
    assert "dense1/kernel" in msg and str((12 * 12 * 6, 16)) in msg and str((16, 12 * 12 * 6)) in msg


def test_check_returns_float32():
    w = {name: a.astype(np.float64) for name, a in weights.init(SMALL, 0).items()}
    out = weights.check(w, SMALL)
    assert all(a.dtype == np.float32 for a in out.values())
