"""The shared data pipeline: normalisation, seeded order, batching and limits."""

import types

import numpy as np
import pytest

from mnist_bench.common import pipeline
from mnist_bench.common.recipe import Recipe


def _arrays(n_train: int, n_test: int = 10) -> pipeline.Arrays:
    """Arrays whose labels are the image indices, so batches reveal which images they hold."""
    train_x = np.broadcast_to(np.arange(n_train, dtype=np.float32)[:, None, None], (n_train, 28, 28)).copy()
    test_x = np.broadcast_to(np.arange(n_test, dtype=np.float32)[:, None, None], (n_test, 28, 28)).copy()
    return pipeline.Arrays(train_x, np.arange(n_train, dtype=np.int32), test_x, np.arange(n_test, dtype=np.int32))


def test_normalise_range_and_dtype():
    images = np.array([[[0, 255], [128, 0]]], dtype=np.uint8)
    out = pipeline.normalise(images)
    assert out.dtype == np.float32 and out.shape == images.shape
    assert out[0, 0, 0] == -1.0 and out[0, 0, 1] == 1.0
    np.testing.assert_allclose(out[0, 1, 0], (128 / 255 - 0.5) / 0.5, atol=1e-6)
    full = pipeline.normalise(np.arange(256, dtype=np.uint8).reshape(1, 16, 16))
    assert full.min() == -1.0 and full.max() == 1.0


def test_epoch_order_is_a_deterministic_permutation():
    a = pipeline.epoch_order(3, 0, 500)
    np.testing.assert_array_equal(a, pipeline.epoch_order(3, 0, 500))
    np.testing.assert_array_equal(np.sort(a), np.arange(500))


def test_epoch_order_differs_between_epochs_and_seeds():
    base = pipeline.epoch_order(0, 0, 500)
    assert not np.array_equal(base, pipeline.epoch_order(0, 1, 500))
    assert not np.array_equal(base, pipeline.epoch_order(1, 0, 500))
    # (seed, epoch) is not confused with (epoch, seed).
    assert not np.array_equal(pipeline.epoch_order(1, 2, 500), pipeline.epoch_order(2, 1, 500))


def test_train_batches_drop_last_partial_batch():
    arrays = _arrays(100)
    batches = list(pipeline.train_batches(arrays, Recipe(), seed=0, epoch=0))
    assert len(batches) == 1
    x, y = batches[0]
    assert x.shape == (64, 28, 28) and y.shape == (64,)


def test_train_batches_follow_the_seeded_order_without_repeats():
    arrays = _arrays(1000)
    recipe = Recipe()
    batches = list(pipeline.train_batches(arrays, recipe, seed=5, epoch=2))
    assert len(batches) == 1000 // 64
    assert all(x.shape == (64, 28, 28) and y.shape == (64,) for x, y in batches)
    seen = np.concatenate([y for _, y in batches])
    assert len(np.unique(seen)) == len(seen) == 15 * 64
    np.testing.assert_array_equal(seen, pipeline.epoch_order(5, 2, 1000)[: 15 * 64])
    # Images travel with their labels.
    for x, y in batches:
        np.testing.assert_array_equal(x[:, 0, 0], y.astype(np.float32))


def test_steps_per_epoch():
    assert pipeline.steps_per_epoch(1000, Recipe()) == 15
    assert pipeline.steps_per_epoch(1000, Recipe(steps_per_epoch=3)) == 3
    assert pipeline.steps_per_epoch(1000, Recipe(steps_per_epoch=100)) == 15
    assert pipeline.steps_per_epoch(60000, Recipe()) == 937
    arrays = _arrays(1000)
    assert len(list(pipeline.train_batches(arrays, Recipe(steps_per_epoch=4), 0, 0))) == 4


@pytest.mark.parametrize("chunk", [1, 2, 4, 20])
def test_train_chunks_stack_the_batches(chunk):
    arrays = _arrays(64 * 5 + 10)
    recipe = Recipe()
    batches = list(pipeline.train_batches(arrays, recipe, 1, 0))
    chunks = list(pipeline.train_chunks(arrays, recipe, 1, 0, chunk))
    sizes = [x.shape[0] for x, _ in chunks]
    assert sum(sizes) == 5 and all(1 <= k <= chunk for k in sizes)
    assert all(k == chunk for k in sizes[:-1])
    for x, y in chunks:
        assert x.shape[1:] == (64, 28, 28) and y.shape[1:] == (64,)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in chunks]), np.stack([x for x, _ in batches]))
    np.testing.assert_array_equal(np.concatenate([y for _, y in chunks]), np.stack([y for _, y in batches]))


def test_eval_batches_keep_every_image():
    x = np.arange(2500 * 4, dtype=np.float32).reshape(2500, 2, 2)
    batches = list(pipeline.eval_batches(x, 1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    np.testing.assert_array_equal(np.concatenate(batches), x)
    assert list(pipeline.eval_batches(x[:0], 1000)) == []
    assert [len(b) for b in pipeline.eval_batches(x[:1000], 1000)] == [1000]


def _fake_dataset(n_train=200, n_test=50):
    rng = np.random.default_rng(0)
    return types.SimpleNamespace(
        train_images=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        train_labels=rng.integers(0, 10, n_train, dtype=np.uint8),
        test_images=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        test_labels=rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def test_prepare_without_limits():
    ds = _fake_dataset()
    arrays = pipeline.prepare(ds, Recipe())
    assert arrays.train_x.shape == (200, 28, 28) and arrays.test_x.shape == (50, 28, 28)
    assert arrays.train_x.dtype == np.float32 and arrays.test_x.dtype == np.float32
    assert arrays.train_y.dtype == np.int32 and arrays.test_y.dtype == np.int32
    np.testing.assert_array_equal(arrays.train_x, pipeline.normalise(ds.train_images))
    np.testing.assert_array_equal(arrays.test_y, ds.test_labels)


def test_prepare_applies_limits_to_the_first_images():
    ds = _fake_dataset()
    arrays = pipeline.prepare(ds, Recipe(train_limit=128, test_limit=20))
    assert arrays.train_x.shape == (128, 28, 28) and arrays.train_y.shape == (128,)
    assert arrays.test_x.shape == (20, 28, 28) and arrays.test_y.shape == (20,)
    np.testing.assert_array_equal(arrays.train_x, pipeline.normalise(ds.train_images[:128]))
    np.testing.assert_array_equal(arrays.train_y, ds.train_labels[:128].astype(np.int32))
    np.testing.assert_array_equal(arrays.test_x, pipeline.normalise(ds.test_images[:20]))
    np.testing.assert_array_equal(arrays.test_y, ds.test_labels[:20].astype(np.int32))
    assert arrays.train_y.dtype == np.int32 and arrays.test_y.dtype == np.int32
