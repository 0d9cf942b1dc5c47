"""Canonical weights: one framework-neutral format every backend loads and exports.

Layouts (float32 NumPy arrays, channels-last like Keras and Flax):

=================  ======================  =====================================
name               shape                   meaning
=================  ======================  =====================================
``conv1/kernel``   (3, 3, 1, C1)           (kh, kw, in, out)
``conv1/bias``     (C1,)
``conv2/kernel``   (3, 3, C1, C2)          (kh, kw, in, out)
``conv2/bias``     (C2,)
``dense1/kernel``  (12 * 12 * C2, H)       (features, out); see below
``dense1/bias``    (H,)
``dense2/kernel``  (H, 10)                 (in, out)
``dense2/bias``    (10,)
=================  ======================  =====================================

The 9,216 (= 12 * 12 * 64) features entering ``dense1`` are in **(h, w, c)**
order, i.e. feature ``(h * 12 + w) * C2 + c`` is channel ``c`` of the pooled map
at row ``h``, column ``w`` -- what flattening an NHWC tensor gives. A
channels-first backend (PyTorch flattens NCHW, so (c, h, w) order) must permute
these rows when loading and exporting; :func:`dense1_hwc_to_chw` does it.

The shared initialisation reproduces PyTorch's default scheme (uniform in
``+-1/sqrt(fan_in)`` for kernels and biases) in NumPy from one seed, so every
backend can start from identical weights.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from mnist_bench.common.model import NUM_CLASSES, POOLED_SIZE
from mnist_bench.common.recipe import Recipe

Weights = dict[str, np.ndarray]


class WeightsError(ValueError):
    """A weights file or mapping does not match the canonical layout."""


def shapes(recipe: Recipe) -> dict[str, tuple[int, ...]]:
    c1, c2, h = recipe.conv1_filters, recipe.conv2_filters, recipe.hidden
    return {
        "conv1/kernel": (3, 3, 1, c1),
        "conv1/bias": (c1,),
        "conv2/kernel": (3, 3, c1, c2),
        "conv2/bias": (c2,),
        "dense1/kernel": (POOLED_SIZE * POOLED_SIZE * c2, h),
        "dense1/bias": (h,),
        "dense2/kernel": (h, NUM_CLASSES),
        "dense2/bias": (NUM_CLASSES,),
    }


def init(recipe: Recipe, seed: int) -> Weights:
    """The shared initialisation: PyTorch's default bounds, drawn in NumPy from ``seed``."""
    rng = np.random.default_rng(seed)
    table = shapes(recipe)
    out: Weights = {}
    for layer in ("conv1", "conv2", "dense1", "dense2"):
        kshape = table[f"{layer}/kernel"]
        bound = 1.0 / np.sqrt(np.prod(kshape[:-1]))
        out[f"{layer}/kernel"] = rng.uniform(-bound, bound, kshape).astype(np.float32)
        out[f"{layer}/bias"] = rng.uniform(-bound, bound, table[f"{layer}/bias"]).astype(np.float32)
    return out


def check(weights: Mapping[str, np.ndarray], recipe: Recipe) -> Weights:
    """Return ``weights`` as float32 arrays after checking names and shapes."""
    expected = shapes(recipe)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise WeightsError(
            f"weights do not match the canonical layout: missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    out: Weights = {}
    for name, shape in expected.items():
        array = np.asarray(weights[name])
        if array.shape != shape:
            raise WeightsError(f"weight {name!r} has shape {array.shape}, expected {shape} for this recipe")
        out[name] = array.astype(np.float32, copy=False)
    return out


def dense1_hwc_to_chw(kernel: np.ndarray, channels: int) -> np.ndarray:
    """Reorder dense1's input rows from canonical (h, w, c) to (c, h, w)."""
    hidden = kernel.shape[1]
    grid = kernel.reshape(POOLED_SIZE, POOLED_SIZE, channels, hidden)
    return np.ascontiguousarray(grid.transpose(2, 0, 1, 3).reshape(-1, hidden))


def dense1_chw_to_hwc(kernel: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of :func:`dense1_hwc_to_chw`."""
    hidden = kernel.shape[1]
    grid = kernel.reshape(channels, POOLED_SIZE, POOLED_SIZE, hidden)
    return np.ascontiguousarray(grid.transpose(1, 2, 0, 3).reshape(-1, hidden))


def save(weights: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Save as an uncompressed ``.npz`` (no pickled objects)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **{name: np.asarray(a, dtype=np.float32) for name, a in weights.items()})
    tmp.replace(path)
    return path


def load(path: str | Path, recipe: Recipe | None = None) -> Weights:
    """Load a ``.npz`` written by :func:`save`; pickled content is refused."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise WeightsError(f"weights file {str(path)!r} does not exist") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"weights file {str(path)!r} is not a valid pickle-free .npz: {exc}") from None
    return check(weights, recipe or Recipe())
