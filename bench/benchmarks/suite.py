"""Plain helpers of the benchmark suite, shared by its conftest, its benchmarks and its driver.

What one round measures:

* ``train``: ``Backend.train_chunk`` on ``k`` stacked real MNIST batches (``k``
  SGD steps, dropout on). It returns the ``k`` losses as NumPy, which copies them
  off the device, so the round ends on a synchronised device.
* ``eval``: ``Backend.logits`` on ``k`` real test batches (the harness's
  evaluation path, one ``_logits`` call per batch, each returning NumPy).

``k`` is chosen so a round holds about :data:`ROUND_SAMPLES` images (20 steps at
batch 64, as the harness's chunks; 3 at batch 512) unless ``--mnist-chunk-steps``
says otherwise. Batches are gathered and stacked by the pedantic ``setup``, off
the clock. Samples/s is ``k * batch / median round time``.

Each benchmark also measures its own machine: a :class:`mnist_bench.common.contention.Monitor`
covers its timed rounds (:class:`TimedRoundsMonitor`), and its summary is the
benchmark's ``extra_info["contention"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mnist_bench.common import contention, flops, registry
from mnist_bench.common import precision as numeric
from mnist_bench.common.recipe import Recipe

DEFAULT_BATCH_SIZES = (64, 512)
DEFAULT_ROUNDS = 10
DEFAULT_WARMUP_ROUNDS = 2
ROUND_SAMPLES = 1280
STEP_KINDS = ("train", "eval")
# Every benchmark's extra_info has these keys (the CI test checks them).
EXTRA_INFO_KEYS = (
    "backend", "mode", "precision", "device", "step", "batch_size", "steps_per_round", "samples_per_round", "rounds",
    "warmup_rounds", "samples_per_s", "samples_per_s_best", "flops_per_sample", "gflops", "peak_gflops",
    "peak_source", "fraction_of_peak", "framework_matmul_gflops", "versions", "threads", "device_info",
    "contention",
)


class SuiteError(ValueError):
    """Bad suite input: an unknown or uninstalled backend, an unknown mode, a bad number."""


@dataclass(frozen=True)
class Settings:
    backend: str
    modes: tuple[str, ...]
    device: str
    batch_sizes: tuple[int, ...]
    rounds: int
    warmup_rounds: int
    chunk_steps: int  # 0: about ROUND_SAMPLES images per round
    threads: int
    data_dir: str | None
    peak_file: str | None
    peak_probe: bool
    allow_known_broken: bool
    quiet_wait: dict | None = None  # what the driver saw before starting this process; None when run by hand
    precisions: tuple[str, ...] = (numeric.DEFAULT,)


def check_backend(name: str) -> None:
    """Raise :class:`SuiteError` naming the choices, or how to install the backend."""
    try:
        registry.spec(name)
    except registry.UnknownBackend as exc:
        raise SuiteError(str(exc)) from None
    if not registry.is_available(name):
        raise SuiteError(registry.not_installed_message(name))


def select_modes(backend: str, spec: str) -> tuple[str, ...]:
    """:func:`mnist_bench.common.registry.select_modes`, failing as a suite error."""
    try:
        return registry.select_modes(backend, spec)
    except registry.UnknownMode as exc:
        raise SuiteError(str(exc)) from None


def check_precisions(backend: str, precisions: tuple[str, ...], device: str) -> None:
    """Raise :class:`SuiteError` for a precision the backend does not offer or the device cannot do."""
    from mnist_bench.common import machine

    for name in precisions:
        try:
            why = numeric.refusal(name, device, machine.cpu_flags())
        except numeric.PrecisionRefused as exc:
            raise SuiteError(str(exc)) from None
        if why:
            raise SuiteError(why)
        if name not in registry.spec(backend).precisions:
            raise SuiteError(f"{backend} does not train in {name} (its spec offers "
                             f"{', '.join(registry.spec(backend).precisions)})")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SuiteError(f"batch sizes must be comma-separated positive integers, got {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise SuiteError(f"batch sizes must be comma-separated positive integers, got {text!r}")
    return sizes


def steps_per_round(batch_size: int, chunk_steps: int = 0) -> int:
    """``chunk_steps`` if set, else enough steps for about :data:`ROUND_SAMPLES` images (at least 1)."""
    return chunk_steps if chunk_steps > 0 else max(1, math.ceil(ROUND_SAMPLES / batch_size))


def group_name(step: str, batch_size: int, precision: str = numeric.DEFAULT) -> str:
    """pytest-benchmark group: one per (step kind, batch size, precision), so backends sit side by side and a
    bf16 figure is never ranked among fp32 ones."""
    return f"{step} step, batch {batch_size}" + ("" if precision == numeric.DEFAULT else f", {precision}")


def recipe_for(batch_size: int) -> Recipe:
    """The default recipe at this batch size, evaluating in batches of the same size."""
    return Recipe(batch_size=batch_size, eval_batch_size=batch_size)


def flops_per_sample(step: str, recipe: Recipe) -> int:
    """Training: forward plus exact backward; evaluation: forward only (:mod:`mnist_bench.common.flops`)."""
    sizes = (recipe.conv1_filters, recipe.conv2_filters, recipe.hidden)
    if step == "train":
        return flops.train_flops(*sizes)
    if step == "eval":
        return flops.forward_flops(*sizes)
    raise ValueError(f"unknown step kind {step!r}; choose from {', '.join(STEP_KINDS)}")


def known_broken(backend: str, mode: str, device: str) -> str | None:
    return registry.known_broken(backend, mode, device)


class TimedRoundsMonitor:
    """A :class:`mnist_bench.common.contention.Monitor` over exactly the timed rounds of one ``benchmark.pedantic``.

    pedantic calls ``setup`` before every round, warm-up rounds first, and
    ``teardown`` after every round. The monitor starts once the first timed
    round's batches are gathered, just before its clock runs, and is read after
    each timed round, so its summary has one interval per round. Warm-up rounds
    (compilation) are left out; the next round's ``setup`` falls inside an
    interval, but that is this process's own CPU time, never counted as other work.
    """

    def __init__(self, gather, warmup_rounds: int, cpus: list[int], harness: int | None = None) -> None:
        self.gather = gather
        self.warmup_rounds = warmup_rounds
        self.monitor = contention.Monitor(list(cpus), harness=harness)
        self._setups = 0
        self._teardowns = 0

    def setup(self):
        arguments = self.gather()
        self._setups += 1
        if self._setups == self.warmup_rounds + 1:
            self.monitor.start()
        return arguments

    def teardown(self, *args, **kwargs) -> None:
        self._teardowns += 1
        if self._teardowns > self.warmup_rounds:
            self.monitor.sample()
