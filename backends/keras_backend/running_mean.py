"""Per-step losses from the running means Keras logs (plain NumPy: imports no framework)."""

from __future__ import annotations

import numpy as np


def step_losses(means: list[float], start: int) -> np.ndarray:
    """The losses of the epoch's steps ``start``, ``start + 1``, ... (0-based) from Keras's running means.

    ``means[i]`` is the mean loss of the epoch's first ``i + 1`` steps (Keras resets it every epoch),
    so step ``i``'s loss is ``(i + 1) * means[i] - i * means[i - 1]``; computed in float64.
    """
    first = max(start - 1, 0)
    totals = np.arange(first + 1, len(means) + 1) * np.asarray(means[first:], np.float64)
    losses = np.diff(totals) if start > 0 else np.diff(totals, prepend=0.0)
    return losses.astype(np.float32)
