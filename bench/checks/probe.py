"""The inputs every probe starts from (real MNIST batches in the pipeline's order, the canonical initial
weights) and how two probes' outputs are measured against each other.

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


# What parity compares between two probes' outputs, in the order checks are reported.
COMPARED = ("forward_logits", "loss", "gradients", "trajectory_loss", "trajectory_weights")


def difference(a: dict, b: dict, check: str) -> float:
    """How far probe ``b``'s outputs are from ``a``'s on one check; gradients relative to ``a``'s largest entry.

    The pairwise checks and the checks against the float64 oracle (which passes the oracle as ``a``)
    both measure through this one function.
    """
    if check == "forward_logits":
        return float(np.max(np.abs(a["logits"] - b["logits"])))
    if check == "loss":
        return abs(float(a["loss"]) - float(b["loss"]))
    if check == "gradients":
        return max(float(np.max(np.abs(a[k] - b[k])) / max(float(np.max(np.abs(a[k]))), 1e-30))
                   for k in a if k.startswith("g/"))
    if check == "trajectory_loss":
        return float(np.max(np.abs(a["losses"] - b["losses"])))
    if check == "trajectory_weights":
        return max(float(np.max(np.abs(a[k] - b[k]))) for k in a if k.startswith("final/"))
    raise ValueError(f"unknown check {check!r}; choose from {', '.join(COMPARED)}")
