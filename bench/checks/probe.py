"""The inputs every probe starts from: real MNIST batches in the pipeline's order, and the canonical initial weights.

The parity checks, the data-parallel parity check and the profiler all train a
few real batches from known weights; they build them here, so that each sees
the same batches (seed, epoch 0, the pipeline's last-batch rule) and the same
weights (:func:`mnist_bench.common.weights.init`).
"""

from __future__ import annotations

import numpy as np

from mnist_bench.common.recipe import Recipe


def parity_recipe() -> Recipe:
    """The default recipe with dropout off: every step is then deterministic, so backends can be compared."""
    return Recipe(dropout1=0.0, dropout2=0.0)


def first_batches(data_dir: str | None, recipe: Recipe, steps: int, seed: int = 0, test_set: bool = True):
    """(arrays, xs, ys): the prepared dataset and its first ``steps`` training batches of epoch 0, stacked.

    ``test_set=False`` prepares one test image only, for probes that never evaluate.
    """
    from mnist_bench.common import datasets, pipeline

    arrays = pipeline.prepare(datasets.load("mnist", data_dir), recipe if test_set else recipe.replace(test_limit=1))
    batches = pipeline.train_batches(arrays, recipe, seed, epoch=0)
    xs, ys = map(np.stack, zip(*(next(batches) for _ in range(steps))))
    return arrays, xs, ys


def initial_weights(recipe: Recipe, seed: int = 0, prefix: str = "w/") -> dict[str, np.ndarray]:
    """The canonical initial weights, each name prefixed (to sit beside other arrays in one ``.npz``)."""
    from mnist_bench.common import weights

    return {f"{prefix}{name}": value for name, value in weights.init(recipe, seed).items()}
