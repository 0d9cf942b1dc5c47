"""NumPy: the oracle. The model's mathematics written out by hand (:mod:`.model`), in float64.

Modes: ``float64`` (the default: the reference every framework is measured against) and
``float32`` (the same code in float32, to tell float32 rounding apart from a framework's own
choices). The CPU only, one process; BLAS threads are whatever NumPy's BLAS uses.

Parameters are kept channels-last in the canonical layout, so loading and exporting only
change the dtype: float32 canonical weights become float64 exactly, and export returns
arrays in the mode's dtype (float64 in the oracle), so nothing is rounded on the way out.
Dropout masks come from a NumPy Generator seeded with ``(seed, DROPOUT_STREAM, step)``: a
fresh stream per step, like flax-linen's ``fold_in(key, step)``, so losses do not depend
on how steps are grouped into chunks, and never the stream that shuffles the data
(``default_rng((seed, epoch))``). NumPy has no initialisers of its own, so ``init="native"``
starts from the shared initialisation too.
"""

from __future__ import annotations

from typing import final

import numpy as np

from mnist_bench.common import weights
from mnist_bench.common.interface import Backend, DeviceUnavailable
from mnist_bench.backends.numpy_backend.spec import SPEC

from . import model

DROPOUT_STREAM = 0x64726F70  # "drop": keeps dropout's seed sequence apart from the data order's
# Inference in batches of this many images: conv2's patch matrix is 85 MB per 64 images in float64.
INFERENCE_BATCH = 64
DTYPES = {"float64": np.float64, "float32": np.float32}


@final
class NumpyBackend(Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.modes

    def _build(self) -> None:
        if self.device != "cpu":
            raise DeviceUnavailable(f"the NumPy oracle runs on the CPU only; there is no {self.device!r} device for it")
        self._dtype = np.dtype(DTYPES[self.mode])
        self._step = 0
        self.load_weights(weights.init(self.recipe, self.seed))

    def load_weights(self, canonical: weights.Weights) -> None:
        weights.check(canonical, self.recipe)  # names and shapes; the values are read below, undowncast
        self.params = {name: np.array(canonical[name], dtype=self._dtype) for name in weights.shapes(self.recipe)}
        self.velocity = {name: np.zeros_like(p) for name, p in self.params.items()}

    def export_weights(self) -> weights.Weights:
        return {name: p.copy() for name, p in self.params.items()}

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = self.recipe
        losses = np.empty(len(x), np.float32)
        for i, (xb, yb) in enumerate(zip(x, y)):
            rng = np.random.default_rng((self.seed, DROPOUT_STREAM, self._step))
            logits, cache = model.forward(self.params, xb, rng, (r.dropout1, r.dropout2))
            labels = np.asarray(yb, np.int64)
            losses[i] = model.loss(logits, labels)
            grads = model.backward(self.params, logits, labels, cache)
            model.sgd_momentum(self.params, grads, self.velocity, r.learning_rate, r.momentum)
            self._step += 1
        return losses

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        labels = np.asarray(y, np.int64)
        logits, cache = model.forward(self.params, x)
        return float(model.loss(logits, labels)), model.backward(self.params, logits, labels, cache)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        parts = [model.forward(self.params, x[i:i + INFERENCE_BATCH])[0] for i in range(0, len(x), INFERENCE_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, weights.NUM_CLASSES), self._dtype)

    def numerics(self) -> dict:
        return {"dtype": self.mode, "tf32": False, "matmul_precision": "highest"}

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def device_info(self) -> dict:
        return {"kind": "cpu", "name": "cpu", "count": 1}

    def peak_device_memory(self) -> int | None:
        return None
