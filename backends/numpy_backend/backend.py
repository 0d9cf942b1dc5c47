"""NumPy: the oracle. The model's mathematics written out by hand (:mod:`.model`), in float64.

Modes: ``float64`` (the default: the reference every framework is measured against) and
``float32`` (the same code in float32, to tell float32 rounding apart from a framework's own
choices). The CPU only, one process; BLAS threads are whatever NumPy's BLAS uses.

Below fp32 (``--precision bf16``, ``fp16``, ``tf32``; mode ``float32`` only) it emulates what a
reduced-precision framework run is entitled to: float32 arithmetic, float32 master parameters, and
each convolution's and matmul's operands and result rounded where the frameworks round them
(:class:`.model.Rounding`). That run is the reference the parity check measures each framework's
run in the same precision against (bench/checks/oracle.py).

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

from mnist_bench.common import precision as numeric
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
    precisions = SPEC.precisions

    def _build(self) -> None:
        if self.device != "cpu":
            raise DeviceUnavailable(f"the NumPy oracle runs on the CPU only; there is no {self.device!r} device for it")
        if self.precision.name != numeric.DEFAULT and self.mode != "float32":
            raise numeric.PrecisionRefused(f"numpy emulates {self.precision.name} in float32 arithmetic: mode float32 "
                                           f"only, not {self.mode}")
        self._dtype = np.dtype(DTYPES[self.mode])
        self._rounding = model.ROUNDINGS[self.precision.name]
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
            operands = model.rounded(self.params, self._rounding)
            logits, cache = model.forward(operands, xb, rng, (r.dropout1, r.dropout2), self._rounding)
            labels = np.asarray(yb, np.int64)
            losses[i] = model.loss(logits, labels)
            grads = model.backward(operands, logits, labels, cache, self._rounding)
            model.sgd_momentum(self.params, grads, self.velocity, r.learning_rate, r.momentum)
            self._step += 1
        return losses

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        labels = np.asarray(y, np.int64)
        operands = model.rounded(self.params, self._rounding)
        logits, cache = model.forward(operands, x, rounding=self._rounding)
        return float(model.loss(logits, labels)), model.backward(operands, logits, labels, cache, self._rounding)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        operands = model.rounded(self.params, self._rounding)
        parts = [model.forward(operands, x[i:i + INFERENCE_BATCH], rounding=self._rounding)[0]
                 for i in range(0, len(x), INFERENCE_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, weights.NUM_CLASSES), self._dtype)

    def numerics(self) -> dict:
        emulated = self.precision.name != numeric.DEFAULT
        return {"dtype": self.mode, "compute_dtype": self.precision.compute_dtype if emulated else self.mode,
                "tf32": self.precision.tf32,
                "matmul_precision": f"{self.precision.name} emulated in float32 arithmetic" if emulated else "highest"}

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def device_info(self) -> dict:
        return {"kind": "cpu", "name": "cpu", "count": 1}

    def peak_device_memory(self) -> int | None:
        return None
