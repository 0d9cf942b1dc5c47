"""The harness's epoch-level path (common/interface.EpochTrainer, used by Keras's model.fit) keeps the
chunk path's semantics: the same chunks, losses, steady-state rules, progress and divergence checks.

A NumPy (float32 oracle) backend trains the same batches both ways; only how the work is handed over differs.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_bench.backends.numpy_backend.backend import NumpyBackend
from mnist_bench.bench.run import training
from mnist_bench.common import datasets, pipeline
from mnist_bench.common.interface import EpochTrainer
from mnist_bench.common.recipe import Recipe

RECIPE = Recipe(epochs=2, steps_per_epoch=5, test_limit=50, dropout1=0.0, dropout2=0.0)
SETTINGS = training.LoopSettings(chunk_steps=2)


class WholeEpochNumpy(NumpyBackend, EpochTrainer):
    """The float32 oracle, trained one epoch per call and reporting chunk boundaries as Keras's callback does."""

    calls: list[list[int]]
    reported: list[int] | None = None  # a wrong list of chunk sizes to report, to check the harness notices

    def train_epoch(self, x, y, chunk_sizes, on_chunk):
        self.calls = [*getattr(self, "calls", []), list(chunk_sizes)]
        done = 0
        for size in self.reported or chunk_sizes:
            on_chunk(self.train_chunk(x[done:done + size], y[done:done + size]))
            done += size


@pytest.fixture(scope="module")
def arrays(shared_data_dir):
    return pipeline.prepare(datasets.load("mnist", str(shared_data_dir)), RECIPE)


def _train(backend, arrays):
    events = []
    result = training.train(backend, arrays, RECIPE, 0, SETTINGS, events.append)
    return result, events


def test_epoch_path_matches_chunk_path(arrays):
    chunked, chunk_events = _train(NumpyBackend(RECIPE, mode="float32", seed=0), arrays)
    whole_backend = WholeEpochNumpy(RECIPE, mode="float32", seed=0)
    whole, whole_events = _train(whole_backend, arrays)
    # One call per epoch, asked for the chunk path's chunks: the first step alone in epoch 0 only.
    assert whole_backend.calls == [[1, 2, 2], [2, 2, 1]]
    for a, b in zip(chunked["epochs"], whole["epochs"]):
        assert a["steps"] == b["steps"] == 5
        assert a["train_loss"] == b["train_loss"] and a["test_accuracy"] == b["test_accuracy"]
    assert whole["timing"]["steady_chunks"] == chunked["timing"]["steady_chunks"] == 3
    assert whole["timing"]["first_step_s"] > 0 and whole["timing"]["train_s"] >= sum(
        e["train_s"] for e in whole["epochs"]) * 0.999
    steps = [(e["epoch"], e["step"], e["loss"]) for e in chunk_events if e["event"] == "step"]
    assert steps == [(e["epoch"], e["step"], e["loss"]) for e in whole_events if e["event"] == "step"]


def test_epoch_path_refuses_chunks_the_harness_did_not_ask_for(arrays):
    backend = WholeEpochNumpy(RECIPE, mode="float32", seed=0)
    backend.reported = [1, 4]
    with pytest.raises(RuntimeError, match=r"reported chunks of \[1, 4\] steps; the harness asked for \[1, 2, 2\]"):
        _train(backend, arrays)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_epoch_path_stops_at_a_diverged_chunk(arrays):
    backend = WholeEpochNumpy(RECIPE.replace(learning_rate=1e6), mode="float32", seed=0)
    with pytest.raises(training.Diverged) as caught:
        _train(backend, arrays)
    assert caught.value.epoch == 1 and 1 <= caught.value.step <= 5
    assert len(backend.calls) == 1  # nothing trained after the exception left train_epoch

