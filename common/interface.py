"""The backend interface: one small abstract class, one final class per framework.

A backend owns the model, the optimiser state and the device placement for one
framework. Everything else -- data, order, initial weights, metrics, timing --
is shared and lives outside it. All arrays crossing this interface are NumPy:
images float32 (B, 28, 28) already normalised, labels int32 (B,), weights in the
canonical layout of :mod:`mnist_bench.common.weights`.

Methods that return NumPy arrays copy results off the device, so they also
synchronise it: a clock read after ``train_chunk`` returns measures finished work.
"""

from __future__ import annotations

import abc
from typing import Callable, ClassVar

import numpy as np

from mnist_bench.common import metrics, pipeline, weights
from mnist_bench.common import precision as numeric
from mnist_bench.common.model import NUM_CLASSES
from mnist_bench.common.parallel import SINGLE, Topology
from mnist_bench.common.recipe import Recipe


class DeviceUnavailable(RuntimeError):
    """The requested device kind is not visible to the framework."""


class Backend(abc.ABC):
    """Abstract base; subclasses are final and override only the abstract methods."""

    name: ClassVar[str]
    modes: ClassVar[tuple[str, ...]]
    # Data-parallel backends (one module per framework, e.g. backends/torch_backend/ddp.py)
    # take the global batch and split it across ``topology.world`` devices themselves.
    data_parallel: ClassVar[bool] = False
    # The precisions this class trains in (common/precision.py); a backend's spec lists the same.
    precisions: ClassVar[tuple[str, ...]] = (numeric.DEFAULT,)

    def __init__(self, recipe: Recipe, *, device: str = "cpu", mode: str, seed: int = 0,
                 threads: int | None = None, topology: Topology = SINGLE, precision: str = numeric.DEFAULT) -> None:
        if mode not in self.modes:
            raise ValueError(f"backend {self.name!r} has no mode {mode!r}; choose from {', '.join(self.modes)}")
        if precision not in self.precisions:
            raise numeric.PrecisionRefused(f"{type(self).__name__} ({self.name}) trains in "
                                           f"{', '.join(self.precisions)} only, not {precision}")
        if topology.parallel != self.data_parallel:
            kind = "data-parallel" if self.data_parallel else "single-device"
            raise ValueError(f"{type(self).__name__} is {kind}; it cannot run on {topology.world} device(s)")
        self.recipe = recipe
        self.device = device
        self.mode = mode
        self.seed = seed
        self.threads = threads
        self.topology = topology
        self.precision = numeric.get(precision)
        self._build()
        if recipe.init == "shared":
            self.load_weights(weights.init(recipe, seed))

    # --- what each framework provides -------------------------------------------------

    @abc.abstractmethod
    def _build(self) -> None:
        """Seed the framework, place the model and optimiser on ``self.device``.

        Raises :class:`DeviceUnavailable` if the device kind is not visible.
        """

    @abc.abstractmethod
    def load_weights(self, canonical: weights.Weights) -> None:
        """Set the parameters from canonical weights and reset the optimiser state."""

    @abc.abstractmethod
    def export_weights(self) -> weights.Weights:
        """The current parameters in the canonical layout."""

    @abc.abstractmethod
    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Run ``k`` SGD steps on stacked batches x (k, B, 28, 28), y (k, B).

        B is the global batch; a data-parallel backend gives each device its
        shard (:func:`mnist_bench.common.parallel.shard`) and returns global-mean losses.
        Dropout is applied as the recipe says. Returns the k training losses
        (float32), which brings them to the host and so synchronises the device.
        """

    @abc.abstractmethod
    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        """Loss and canonical-layout gradients for one batch, dropout off, no update."""

    @abc.abstractmethod
    def _logits(self, x: np.ndarray) -> np.ndarray:
        """Logits (B, 10) for one batch in inference mode (dropout off)."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the framework packages this backend uses."""

    @abc.abstractmethod
    def device_info(self) -> dict:
        """The device actually used: kind, name and how many the framework sees."""

    @abc.abstractmethod
    def peak_device_memory(self) -> int | None:
        """Peak device memory in bytes where the framework reports it, else None."""

    @abc.abstractmethod
    def numerics(self) -> dict:
        """The float32 numerics the framework actually applies on this device, read back from it.

        At least ``dtype`` (the parameters' dtype), ``compute_dtype`` (what convolutions and matmuls
        compute in: the Keras policy's, the Flax modules', autocast's), ``tf32`` (whether float32
        matmuls or convolutions may run as TF32) and ``matmul_precision`` (the framework's own
        setting, in its own words); a backend may add the settings it read. The worker checks
        ``compute_dtype`` and ``tf32`` against the requested precision
        (:func:`mnist_bench.common.precision.check_applied`).
        """

    # --- shared behaviour -------------------------------------------------------------

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits for any number of images, in evaluation batches."""
        parts = [self._logits(batch) for batch in pipeline.eval_batches(x, self.recipe.eval_batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, NUM_CLASSES), np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(axis=1)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> metrics.Metrics:
        return metrics.classification_report(y, self.predict(x))


class EpochTrainer(abc.ABC):
    """Optional, beside :class:`Backend`: a framework whose users train a whole epoch in one call.

    Keras users call ``model.fit`` once per run; calling it once per chunk would charge its
    per-call set-up many times per epoch. A backend that is also an ``EpochTrainer`` gets each
    epoch in one call, and :mod:`mnist_bench.bench.run.training` times its chunks from the
    boundaries it reports, with the same rules as ``train_chunk``'s (first step alone, clock
    read after the device is synchronised). ``train_chunk`` stays: the parity probes and the
    benchmark suite call it.
    """

    @abc.abstractmethod
    def train_epoch(self, x: np.ndarray, y: np.ndarray, chunk_sizes: list[int],
                    on_chunk: Callable[[np.ndarray], None]) -> None:
        """Train on stacked batches x (steps, B, 28, 28), y (steps, B) in order, as one framework call.

        After each chunk of ``chunk_sizes`` steps (they sum to ``steps``), call ``on_chunk`` with that
        chunk's losses as NumPy float32, once the device has finished the chunk: the harness reads
        its clock there. An exception ``on_chunk`` raises (a diverged loss) must end the epoch.
        """
