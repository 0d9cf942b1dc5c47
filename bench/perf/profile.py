"""Where a training step's time goes, by operation, from the framework's own profiler.

``python -m mnist_bench.bench.perf.profile --backend flax-linen --mode compiled`` trains a few real batches
through the backend (as the harness drives it), then profiles ``--steps`` more and
prints the operations that took the most time per step:

Each implementation's profiler hook lives in its folder (its spec's ``profiler``); today:

- JAX: ``jax.profiler.trace`` (a Perfetto trace), whose XLA kernels are named by
  fusion (``ynn_fusion.1``); each is mapped back to the jaxpr operation it came
  from through the compiled HLO's metadata, so the table says
  ``transpose(jvp(CNN))/conv2/conv_general_dilated`` rather than a fusion number.
- PyTorch: ``torch.profiler`` by ATen operator (self CPU time).

The profiler costs time itself: read the shares, not the absolute milliseconds.
"""

from __future__ import annotations

import argparse
import sys

from mnist_bench.bench import options
from mnist_bench.common import registry


def _batches(steps: int, data_dir: str | None):
    from mnist_bench.bench.checks.probe import first_batches
    from mnist_bench.common.recipe import Recipe

    recipe = Recipe()
    _, xs, ys = first_batches(data_dir, recipe, steps, test_set=False)
    return recipe, xs, ys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.perf.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="flax-linen", help="an implementation whose spec has a profiler")
    parser.add_argument("--mode", default="compiled")
    parser.add_argument("--steps", type=options.positive_int, default=10)
    parser.add_argument("--top", type=options.positive_int, default=12)
    options.add_threads(parser)
    options.add_data_dir(parser)
    args = parser.parse_args(argv)
    from mnist_bench.bench.run.process_setup import configure_process

    try:
        args.backend = options.backend_names([args.backend])[0]
        profiler = registry.spec(args.backend).load("profiler")
    except (registry.UnknownBackend, registry.NotOffered) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_process(args.threads, "cpu", args.backend)
    recipe, xs, ys = _batches(2 * args.steps, args.data_dir)
    rows = profiler(args.mode, recipe, xs, ys, args.steps)
    total = sum(ms for _, ms in rows)
    print(f"{args.backend}/{args.mode}: {total:.1f} ms per step in profiled operations ({args.threads} threads)")
    for name, ms in rows[:args.top]:
        print(f"{ms:9.2f} ms  {100 * ms / total:5.1f}%  {name[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
