"""Classification metrics in plain NumPy, identical for every backend.

Each backend hands over integer labels and predictions; everything here is
derived from one confusion matrix, so accuracy, per-class and macro scores can
never disagree with each other.

Zero-division rule (the same as scikit-learn's ``zero_division=0``):

* a class that is never predicted has precision 0;
* a class that never occurs in the labels has recall 0;
* F1 is 0 whenever precision + recall is 0.

Macro averages are unweighted means over **all** ``num_classes`` classes, so a
class absent from both labels and predictions counts as 0 and pulls the macro
scores down; on MNIST's test set every class is present, so this never bites
there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mnist_bench.common.model import NUM_CLASSES


@dataclasses.dataclass(frozen=True)
class Metrics:
    """A classification report: overall, macro-averaged and per-class scores.

    ``per_class`` holds one dict per class (``class``, ``precision``, ``recall``,
    ``f1``, ``support``); ``confusion`` is the confusion matrix as nested lists
    (true class rows, predicted class columns). All numbers are plain Python
    ``float``/``int``, so :meth:`to_dict` feeds straight into ``json.dumps``.
    """

    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


def _class_indices(values: Any, name: str, num_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {array.shape}")
    # Floats would be silently truncated by indexing; refuse them instead.
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        bad = array[(array < 0) | (array >= num_classes)][0]
        raise ValueError(f"{name} contains {int(bad)}, outside the class range [0, {num_classes - 1}]")
    return array


def confusion_matrix(labels: Any, preds: Any, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Count (true class, predicted class) pairs.

    ``labels`` and ``preds`` are equal-length 1-D integer arrays with values in
    ``[0, num_classes)``. Returns an int64 array of shape
    ``(num_classes, num_classes)`` whose entry ``[t, p]`` is how many samples of
    true class ``t`` were predicted as ``p``; its trace is the number correct.
    Raises ``ValueError`` naming the problem for a wrong shape, dtype, length or
    an out-of-range class index.
    """
    _check_num_classes(num_classes)
    labels = _class_indices(labels, "labels", num_classes)
    preds = _class_indices(preds, "preds", num_classes)
    if labels.shape != preds.shape:
        raise ValueError(f"labels and preds differ in length: {labels.size} labels, {preds.size} preds")
    # One bincount over flattened (row, col) indices: linear time, no Python loop.
    flat = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def classification_report(labels: Any, preds: Any, num_classes: int = NUM_CLASSES) -> Metrics:
    """Accuracy, macro and per-class precision/recall/F1 from one confusion matrix.

    Inputs are validated as in :func:`confusion_matrix`; additionally an empty
    input raises ``ValueError`` because accuracy would be 0/0. The zero-division
    rule and macro averaging are described in the module docstring: a class never
    predicted has precision 0, a class never present has recall 0, and macro
    scores average over all ``num_classes`` classes.
    """
    matrix = confusion_matrix(labels, preds, num_classes)
    total = int(matrix.sum())
    if total == 0:
        raise ValueError("labels and preds are empty: accuracy is undefined")

    true_pos = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)  # column sums
    support = matrix.sum(axis=1)  # row sums
    # np.divide with where= leaves 0 where the denominator is 0: the zero-division rule.
    precision = np.divide(true_pos, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros(num_classes), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(num_classes), where=denom > 0)

    per_class = [
        {
            "class": k,
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
        }
        for k in range(num_classes)
    ]
    return Metrics(
        accuracy=float(true_pos.sum() / total),
        macro_precision=float(precision.mean()),
        macro_recall=float(recall.mean()),
        macro_f1=float(f1.mean()),
        per_class=per_class,
        confusion=matrix.tolist(),
    )
