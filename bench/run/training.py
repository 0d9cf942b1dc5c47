"""The timed training loop every backend goes through, inside its worker process.

Timing rules (the same for every framework):

* Work is handed to the backend in chunks of ``chunk_steps`` steps. A backend
  returns a chunk's losses as NumPy, which copies them off the device, so each
  clock read follows a synchronised device.
* The first step of the run is timed alone and reported as ``first_step_s``: it
  holds tracing and compilation. The first chunk of every epoch is kept out of
  the steady state too (it follows an evaluation, which can re-trace or evict
  caches); steady-state samples/s is the median over the remaining chunks, with
  the quartiles as its spread.
* Batches are gathered and stacked by NumPy before the clock starts: the data
  pipeline is shared and identical, so it is not what is being compared.
  Epoch wall times include it. A backend that trains a whole epoch per call
  (:class:`~mnist_bench.common.interface.EpochTrainer`, Keras's ``model.fit``) gets
  the epoch stacked at once and reports each chunk's boundary, after
  synchronising; its chunks are timed between boundaries, by the same rules.
* Time to target is training time (evaluation excluded) at the end of the first
  epoch whose test accuracy reaches the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from mnist_bench.common import flops, pipeline
from mnist_bench.common.interface import Backend, EpochTrainer
from mnist_bench.common.recipe import Recipe


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"training diverged: loss {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


@dataclass(frozen=True)
class LoopSettings:
    chunk_steps: int = 20
    target_accuracy: float = 0.99


def _chunk_sizes(total: int, chunk: int, first_alone: bool) -> Iterator[int]:
    done = 0
    if first_alone and total:
        yield 1
        done = 1
    while done < total:
        size = min(chunk, total - done)
        yield size
        done += size


def _stacked(batches: Iterator[tuple[np.ndarray, np.ndarray]], size: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(next(batches) for _ in range(size)))
    return np.stack(xs), np.stack(ys)


def quartiles(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float(q1), float(q3)


class _EpochTally:
    """One epoch's chunks as they finish: losses, training time, steady-state rates and progress.

    The same bookkeeping whether the harness hands the backend each chunk (``train_chunk``) or the
    whole epoch (:class:`~mnist_bench.common.interface.EpochTrainer`).
    """

    def __init__(self, recipe: Recipe, epoch: int, steps: int, steady_rates: list[float], on_progress) -> None:
        self.recipe, self.epoch, self.steps = recipe, epoch, steps
        self.steady_rates, self.on_progress = steady_rates, on_progress
        self.losses: list[np.ndarray] = []
        self.done, self.train_s, self.first_step_s = 0, 0.0, None

    def add(self, chunk_losses: np.ndarray, elapsed: float) -> None:
        index, size = len(self.losses), len(chunk_losses)
        self.train_s += elapsed
        if not np.all(np.isfinite(chunk_losses)):
            bad = int(np.argmin(np.isfinite(chunk_losses)))
            raise Diverged(self.epoch + 1, self.done + bad + 1, float(chunk_losses[bad]))
        self.losses.append(chunk_losses)
        self.done += size
        rate = size * self.recipe.batch_size / elapsed
        if self.epoch == 0 and index == 0:
            self.first_step_s = elapsed
        elif index > (1 if self.epoch == 0 else 0):
            self.steady_rates.append(rate)
        self.on_progress({"event": "step", "epoch": self.epoch + 1, "epochs": self.recipe.epochs, "step": self.done,
                          "steps": self.steps, "loss": float(chunk_losses[-1]), "samples_per_s": rate})


def _train_epoch(backend: Backend, arrays: pipeline.Arrays, recipe: Recipe, seed: int, epoch: int,
                 settings: LoopSettings, steady_rates: list[float], on_progress) -> tuple[np.ndarray, float, float | None]:
    """One epoch in chunks: (its losses, its training seconds, the lone first step's seconds in epoch 0).

    Chunk rates go to ``steady_rates``, leaving out the first step and first chunk of the run
    (compilation, warm-up) and the first chunk of every later epoch.
    """
    steps = pipeline.steps_per_epoch(len(arrays.train_y), recipe)
    batches = pipeline.train_batches(arrays, recipe, seed, epoch)
    sizes = list(_chunk_sizes(steps, settings.chunk_steps, first_alone=epoch == 0))
    tally = _EpochTally(recipe, epoch, steps, steady_rates, on_progress)
    if isinstance(backend, EpochTrainer):
        _whole_epoch(backend, *_stacked(batches, steps), sizes, tally)
    else:
        for size in sizes:
            x, y = _stacked(batches, size)
            start = time.perf_counter()
            chunk_losses = backend.train_chunk(x, y)
            tally.add(chunk_losses, time.perf_counter() - start)
    return np.concatenate(tally.losses), tally.train_s, tally.first_step_s


def _whole_epoch(backend: EpochTrainer, x: np.ndarray, y: np.ndarray, sizes: list[int], tally: _EpochTally) -> None:
    """The epoch in one call; each chunk is timed from the previous boundary (or the call) to its own.

    The harness's own work at a boundary (progress, the machine's load) is off the clock, as between
    ``train_chunk`` calls; the framework's work after the last boundary (ending its epoch) counts
    towards the epoch's training time, not towards any chunk's rate.
    """
    start = time.perf_counter()

    def on_chunk(chunk_losses: np.ndarray) -> None:
        nonlocal start
        tally.add(np.asarray(chunk_losses), time.perf_counter() - start)
        start = time.perf_counter()

    backend.train_epoch(x, y, sizes, on_chunk)
    tally.train_s += time.perf_counter() - start
    if [len(c) for c in tally.losses] != sizes:
        raise RuntimeError(f"{type(backend).__name__}.train_epoch reported chunks of "
                           f"{[len(c) for c in tally.losses]} steps; the harness asked for {sizes}")


def train(backend: Backend, arrays: pipeline.Arrays, recipe: Recipe, seed: int, settings: LoopSettings,
          on_progress: Callable[[dict], None] = lambda event: None) -> dict:
    """Train ``backend`` for the recipe's epochs; return the record's epochs/timing/final parts."""
    epochs: list[dict] = []
    steady_rates: list[float] = []
    first_step_s, train_time, time_to_target, eval_rate, test = None, 0.0, None, None, None
    run_start = time.perf_counter()
    for epoch in range(recipe.epochs):
        epoch_start = time.perf_counter()
        losses, epoch_train_s, first = _train_epoch(backend, arrays, recipe, seed, epoch, settings, steady_rates,
                                                    on_progress)
        first_step_s = first if epoch == 0 else first_step_s
        train_time += epoch_train_s
        eval_start = time.perf_counter()
        test = backend.evaluate(arrays.test_x, arrays.test_y)
        eval_s = time.perf_counter() - eval_start
        eval_rate = len(arrays.test_y) / eval_s
        if time_to_target is None and test.accuracy >= settings.target_accuracy:
            time_to_target = train_time
        epochs.append({"epoch": epoch + 1, "steps": int(len(losses)), "train_loss": float(losses.mean()),
                       "test_accuracy": test.accuracy, "test_macro_f1": test.macro_f1,
                       "wall_s": time.perf_counter() - epoch_start, "train_s": epoch_train_s, "eval_s": eval_s,
                       "elapsed_s": time.perf_counter() - run_start})
        on_progress({"event": "epoch", **epochs[-1], "epochs": recipe.epochs})
    median, q1, q3 = quartiles(steady_rates)
    per_sample = flops.train_flops(recipe.conv1_filters, recipe.conv2_filters, recipe.hidden)
    return {
        "epochs": epochs,
        "timing": {
            "first_step_s": first_step_s,
            "steady_samples_per_s": median,
            "steady_samples_per_s_q1": q1,
            "steady_samples_per_s_q3": q3,
            "steady_chunks": len(steady_rates),
            "chunk_steps": settings.chunk_steps,
            "eval_samples_per_s": eval_rate,
            "train_s": train_time,
            "target_accuracy": settings.target_accuracy,
            "time_to_target_s": time_to_target,
        },
        "flops": {
            "train_per_sample": per_sample,
            "achieved_gflops": None if median is None else per_sample * median / 1e9,
        },
        "final": {"test": test.to_dict()} if test is not None else None,
    }

