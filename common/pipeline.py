"""The one data pipeline: same arrays, same order, same batches for every backend.

* Pixels are scaled to [0, 1] and then normalised as ``(x - 0.5) / 0.5``, giving
  float32 images of shape (N, 28, 28) in [-1, 1]. Backends add the channel axis
  their layout wants (NCHW for PyTorch, NHWC for Keras and Flax) and nothing else.
* Each epoch's order is a permutation drawn from ``numpy.random.default_rng((seed,
  epoch))``: reshuffled every epoch, reproducible from the seed alone, identical
  for every backend.
* **Last-batch rule: training drops the last partial batch.** 60,000 / 64 leaves
  32 images over; they are skipped for that epoch (a different 32 each epoch,
  since the order changes). Every training step then has the same shape, so
  compiled backends (``torch.compile``, ``tf.function``, ``jax.jit``) never
  recompile for a short batch and every step costs the same, which keeps the
  timing fair. Evaluation keeps every test image: its last batch may be short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from mnist_bench.common.recipe import Recipe

MEAN = 0.5
STD = 0.5


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28), ``(x / 255 - 0.5) / 0.5``."""
    return ((images.astype(np.float32) / np.float32(255.0)) - np.float32(MEAN)) / np.float32(STD)


@dataclass(frozen=True)
class Arrays:
    """Normalised images and int32 labels for training and test."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def prepare(dataset, recipe: Recipe) -> Arrays:
    """Normalise a :class:`mnist_bench.common.datasets.Dataset`, applying the recipe's limits."""
    train_n = recipe.train_limit or len(dataset.train_labels)
    test_n = recipe.test_limit or len(dataset.test_labels)
    return Arrays(
        train_x=normalise(dataset.train_images[:train_n]),
        train_y=dataset.train_labels[:train_n].astype(np.int32),
        test_x=normalise(dataset.test_images[:test_n]),
        test_y=dataset.test_labels[:test_n].astype(np.int32),
    )


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of training indices for one epoch (0-based)."""
    return np.random.default_rng((seed, epoch)).permutation(n)


def steps_per_epoch(n_train: int, recipe: Recipe) -> int:
    full = n_train // recipe.batch_size
    return min(full, recipe.steps_per_epoch) if recipe.steps_per_epoch else full


def train_batches(arrays: Arrays, recipe: Recipe, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the epoch's full batches in the seeded order (last partial batch dropped)."""
    order = epoch_order(seed, epoch, len(arrays.train_y))
    bs = recipe.batch_size
    for step in range(steps_per_epoch(len(order), recipe)):
        idx = order[step * bs:(step + 1) * bs]
        yield arrays.train_x[idx], arrays.train_y[idx]


def train_chunks(arrays: Arrays, recipe: Recipe, seed: int, epoch: int, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield stacks of up to ``chunk`` batches: (k, B, 28, 28) images and (k, B) labels."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for x, y in train_batches(arrays, recipe, seed, epoch):
        xs.append(x)
        ys.append(y)
        if len(xs) == chunk:
            yield np.stack(xs), np.stack(ys)
            xs, ys = [], []
    if xs:
        yield np.stack(xs), np.stack(ys)


def eval_batches(x: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Every image, in order; the last batch may be short."""
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]
