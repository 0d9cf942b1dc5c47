"""Timing of plain training loops, each written the way its framework's own MNIST example is.

The loops live in each implementation's folder (its spec's ``plain_loop``: a mapping from mode to
``factory(recipe, train_x, train_y, log_every) -> train(rows) -> loss``, or for a framework that trains
every step in one call, Keras's ``model.fit``, a ``train`` marked ``whole_run`` that takes
``(rows, chunk_sizes, on_chunk)`` and calls ``on_chunk()`` at each boundary) and share nothing with the
harness; an implementation without one is not offered here. ``python -m mnist_bench.bench.perf.plain_loops BACKEND MODE --steps N`` trains one in its own process and
prints its steady-state samples/s as JSON; :mod:`mnist_bench.bench.perf.overhead` runs it against
``mnist-bench run`` in interleaved rounds. The default-mode loops define their own model
(the same network) and hold the whole normalised training set in the framework, slicing
each batch out of it as the examples do, with no chunking, canonical weights, progress
events or records:

* ``torch``/``eager``: pytorch/examples ``mnist/main.py``: ``zero_grad``, forward,
  ``nll_loss`` of ``log_softmax``, ``backward``, ``step``; ``loss.item()`` every 10 batches.
* ``tensorflow``/``compiled``: TensorFlow's "quickstart for experts": a Keras ``Sequential``
  model and a ``tf.function`` ``GradientTape`` step.
* ``flax-linen``/``compiled``: Flax ``examples/mnist`` as it was in Linen: a ``TrainState`` and a jitted
  ``train_step`` fed NumPy batches.
* ``flax-nnx``/``nnx-jit``: Flax ``examples/mnist`` in NNX: an ``nnx.Module``, ``nnx.Optimizer`` and an
  ``@nnx.jit`` step; ``flax-nnx``/``split-merge``: the functional loop of Flax's performance guide.

The tuned modes' loops write each tuned mode's one idea plainly (a cheaper dropout draw
for PyTorch; a whole chunk of steps in one ``tf.function`` loop; patch-GEMM convolutions
in a ``lax.scan``, with the JAX backend's module, since that module *is* the idea).

Timing matches the harness: the same data order (seed 0, epoch 0), the first step timed
alone, then chunks of ``chunk_steps`` steps with the loss read back (which synchronises)
before each clock read; steady state is the median chunk rate, leaving out the first two
chunks as :mod:`mnist_bench.bench.run.training` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from mnist_bench.bench import options
from mnist_bench.common import registry

LOG_EVERY = 10  # pytorch/examples' --log-interval: every plain loop reads the loss back this often


def loops() -> dict[tuple[str, str], str]:
    """(implementation, mode) -> where its plain loop is, for every implementation that has one."""
    return {(name, mode): spec.plain_loop for name, spec in registry.specs().items() if spec.plain_loop
            for mode in plain_loop_modes(name)}


def plain_loop_modes(name: str) -> tuple[str, ...]:
    """The modes ``name`` has a plain loop for (read from its spec's module, which imports no framework)."""
    spec = registry.spec(name)
    return tuple(spec.load("plain_loop")) if spec.plain_loop else ()


def plain_loop(name: str, mode: str):
    """The loop factory ``(recipe, train_x, train_y, log_every) -> train(rows) -> loss``; exit-2 errors name what is missing."""
    spec = registry.spec(name)
    if not spec.plain_loop:
        raise registry.NotOffered(f"implementation {name!r} has no plain loop (its spec sets no plain_loop), "
                                  "so its harness overhead cannot be measured")
    found = spec.load("plain_loop")
    if mode not in found:
        raise registry.NotOffered(f"implementation {name!r} has no plain loop for mode {mode!r}; "
                                  f"it has: {', '.join(found)}")
    return found[mode]


def measure(backend: str, mode: str, steps: int, chunk_steps: int, threads: int, data_dir: str | None) -> dict:
    """Train ``steps`` steps of the plain loop; time it as the harness times a run."""
    from mnist_bench.bench.run.process_setup import configure_process

    configure_process(threads, "cpu", backend)  # the same pinning and thread counts as a worker, before any framework
    from mnist_bench.bench.run.training import _chunk_sizes
    from mnist_bench.common import contention, datasets, pipeline
    from mnist_bench.common.recipe import Recipe

    recipe = Recipe()
    arrays = pipeline.prepare(datasets.load("mnist", data_dir), recipe)
    order = pipeline.epoch_order(0, 0, len(arrays.train_y))[:steps * recipe.batch_size]
    rows = order.reshape(steps, recipe.batch_size)
    train = plain_loop(backend, mode)(recipe, arrays.train_x, arrays.train_y, LOG_EVERY)
    monitor = contention.Monitor(contention.pinned_cpus(threads)).start()
    rates, done = [], 0
    sizes = list(_chunk_sizes(steps, chunk_steps, first_alone=True))

    def chunk_done(index: int, size: int, elapsed: float) -> None:
        monitor.sample()
        if index > 1:  # the lone first step (compilation) and the first chunk, as in mnist_bench.bench.run.training
            rates.append(size * recipe.batch_size / elapsed)

    if getattr(train, "whole_run", False):  # model.fit: every step in one call, boundaries reported back
        clock = [time.perf_counter()]

        def on_chunk() -> None:
            index = len(clock) - 1
            chunk_done(index, sizes[index], time.perf_counter() - clock[-1])
            clock.append(time.perf_counter())

        train(rows, sizes, on_chunk)
    else:
        for index, size in enumerate(sizes):
            start = time.perf_counter()
            train(rows[done:done + size])
            elapsed = time.perf_counter() - start
            done += size
            chunk_done(index, size, elapsed)
    return {"backend": backend, "mode": mode, "steps": steps, "chunk_steps": chunk_steps,
            "steady_samples_per_s": float(np.median(rates)) if rates else None, "chunks": len(rates),
            "contention": monitor.summary()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.perf.plain_loops", description=__doc__.splitlines()[0])
    parser.add_argument("backend")
    parser.add_argument("mode")
    parser.add_argument("--steps", type=options.positive_int, default=400)
    parser.add_argument("--chunk-steps", type=options.positive_int, default=20)
    parser.add_argument("--threads", type=options.thread_count, required=True)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    try:
        plain_loop(args.backend, args.mode)
    except (registry.UnknownBackend, registry.NotOffered) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(measure(args.backend, args.mode, args.steps, args.chunk_steps, args.threads, args.data_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
