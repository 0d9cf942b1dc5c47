"""One training-step and one evaluation-step benchmark per mode and batch size of one backend.

How a benchmark is timed (``benchmark.pedantic``, ``iterations=1``): ``setup``
stacks the next round's real MNIST batches off the clock; ``warmup_rounds``
untimed rounds absorb tracing and compilation; each of ``rounds`` timed rounds is
one ``train_chunk`` (k SGD steps) or one ``logits`` call (k evaluation batches),
and ends with the results copied to the host, which synchronises the device
inside the timed function. A contention monitor is read around the timed
rounds (pedantic's ``setup`` and ``teardown``, off the clock) and its summary is
``extra_info["contention"]``. See :mod:`mnist_bench.bench.benchmarks.suite`.
"""

from __future__ import annotations

import itertools
import os
import platform

import numpy as np
import pytest

from mnist_bench.bench.benchmarks import keys, suite
from mnist_bench.common import peak, pipeline


def _train_rounds(arrays, recipe, steps: int):
    """Full chunks of ``steps`` training batches in the seeded per-epoch order, epoch after epoch."""
    for epoch in itertools.count():
        for x, y in pipeline.train_chunks(arrays, recipe, seed=0, epoch=epoch, chunk=steps):
            if len(x) == steps:
                yield (x, y), {}


def _eval_rounds(arrays, images: int):
    """Consecutive slices of ``images`` test images, wrapping around (repeated if the set is smaller)."""
    pool = arrays.test_x
    if images > len(pool):
        pool = np.concatenate([pool] * -(-images // len(pool)))
    start = 0
    while True:
        if start + images > len(pool):
            start = 0
        yield (pool[start:start + images],), {}
        start += images


def _benchmark_step(step, mode, batch_size, precision, benchmark, request, settings, backends, arrays, cpu_peak,
                    framework_peaks):
    backend, device, broken = backends(mode, batch_size, precision)
    if backend is None:
        pytest.skip(f"known broken: {settings.backend}/{mode} on {device}: {broken} "
                    "(time it anyway with --mnist-allow-known-broken)")
    steps = suite.steps_per_round(batch_size, settings.chunk_steps)
    if step == "train":
        target, rounds = backend.train_chunk, _train_rounds(arrays, backend.recipe, steps)
    else:
        target, rounds = backend.logits, _eval_rounds(arrays, steps * batch_size)
    device_peak = framework_peaks(device)  # measured before the clock runs, once per session
    benchmark.group = suite.group_name(step, batch_size, precision)
    # Other processes on our CPUs slow the rounds down: measure them over exactly these rounds.
    # The parent is the driver when there is one; its CPU time is reported apart from other work.
    watch = suite.TimedRoundsMonitor(lambda: next(rounds), settings.warmup_rounds,
                                     request.config.stash[keys.THREADS]["affinity"], harness=os.getppid())
    result = benchmark.pedantic(target, setup=watch.setup, teardown=watch.teardown, rounds=settings.rounds,
                                warmup_rounds=settings.warmup_rounds, iterations=1)

    # The timed work was real: one finite loss per step, or finite logits for every image.
    expected_shape = (steps,) if step == "train" else (steps * batch_size, 10)
    assert result.shape == expected_shape, f"{target.__name__} returned shape {result.shape}, expected {expected_shape}"
    assert np.all(np.isfinite(result)), f"{target.__name__} returned non-finite values"
    if benchmark.disabled:  # --benchmark-disable: ran once, nothing timed
        return

    stats = benchmark.stats.stats
    samples = steps * batch_size
    samples_per_s = samples / stats.median
    per_sample = suite.flops_per_sample(step, backend.recipe)
    gflops = per_sample * samples_per_s / 1e9
    reference = peak.for_device(device, cpu_peak, device_peak)
    benchmark.extra_info.update({
        "backend": settings.backend,
        "mode": mode,
        "precision": precision,
        "device": device,
        "step": step,
        "batch_size": batch_size,
        "steps_per_round": steps,
        "samples_per_round": samples,
        "rounds": settings.rounds,
        "warmup_rounds": settings.warmup_rounds,
        "samples_per_s": samples_per_s,
        "samples_per_s_best": samples / stats.min,
        "flops_per_sample": per_sample,
        "gflops": gflops,
        "peak_gflops": reference["gflops"] if reference else None,
        "peak_source": reference["source"] if reference else None,
        "fraction_of_peak": peak.fraction(gflops, reference),
        "framework_matmul_gflops": device_peak["gflops"] if device_peak else None,
        "versions": {**backend.versions(), "numpy": np.__version__, "python": platform.python_version()},
        "threads": request.config.stash[keys.THREADS],
        "device_info": backend.device_info(),
        "contention": watch.monitor.summary(),
    })
    if broken:
        benchmark.extra_info["known_broken"] = broken


def test_train_step(mode, batch_size, precision, benchmark, request, settings, backends, arrays, cpu_peak,
                    framework_peaks):
    """``Backend.train_chunk``: k SGD steps (forward, backward, update) on real training batches."""
    _benchmark_step("train", mode, batch_size, precision, benchmark, request, settings, backends, arrays, cpu_peak,
                    framework_peaks)


def test_eval_step(mode, batch_size, precision, benchmark, request, settings, backends, arrays, cpu_peak,
                   framework_peaks):
    """``Backend.logits``: inference on k real test batches, dropout off."""
    _benchmark_step("eval", mode, batch_size, precision, benchmark, request, settings, backends, arrays, cpu_peak,
                    framework_peaks)
