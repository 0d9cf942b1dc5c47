"""Where a training step's time goes, by operation, from the framework's own profiler.

``python -m mnist_bench.bench.perf.profile --backend jax --mode compiled`` trains a few real batches
through the backend (as the harness drives it), then profiles ``--steps`` more and
prints the operations that took the most time per step:

- JAX: ``jax.profiler.trace`` (a Perfetto trace), whose XLA kernels are named by
  fusion (``ynn_fusion.1``); each is mapped back to the jaxpr operation it came
  from through the compiled HLO's metadata, so the table says
  ``transpose(jvp(CNN))/conv2/conv_general_dilated`` rather than a fusion number.
- PyTorch: ``torch.profiler`` by ATen operator (self CPU time).

The profiler costs time itself: read the shares, not the absolute milliseconds.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from mnist_bench.bench import options

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+)")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]+)"')
_COMPUTATION = re.compile(r"^%?([\w.\-]+) .*\{\s*$")


def hlo_op_names(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> the jaxpr op_name it came from (fusions: that of their body).

    XLA drops the metadata of some fusions it builds itself (a convolution's weight
    gradient, for one); those are named by their output shape instead.
    """
    direct, calls, first_in, shapes = {}, {}, {}, {}
    computation = None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header and "=" not in line.split("{")[0]:
            computation = header.group(1)
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name = m.group(1)
        shapes[name] = f"(no metadata) output {m.group(2)}"
        called, op_name = _CALLS.search(line), _OP_NAME.search(line)
        called, op_name = called and called.group(1), op_name and op_name.group(1)
        if op_name:
            direct[name] = op_name
            first_in.setdefault(computation, op_name)
        if called:
            calls[name] = called
    return {**shapes, **{n: first_in[c] for n, c in calls.items() if c in first_in}, **direct}


def _batches(steps: int, data_dir: str | None):
    from mnist_bench.bench.checks.probe import first_batches
    from mnist_bench.common.recipe import Recipe

    recipe = Recipe()
    _, xs, ys = first_batches(data_dir, recipe, steps, test_set=False)
    return recipe, xs, ys


def profile_jax(mode: str, steps: int, data_dir: str | None) -> list[tuple[str, float]]:
    import jax

    from mnist_bench.backends.jax_backend.backend import JaxBackend

    recipe, xs, ys = _batches(2 * steps, data_dir)
    backend = JaxBackend(recipe, device="cpu", mode=mode, seed=0)
    backend.train_chunk(xs[:steps], ys[:steps])  # compile
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            backend.train_chunk(xs[steps:], ys[steps:])
        trace = next(Path(tmp).rglob("*.trace.json.gz"))
        events = json.load(gzip.open(trace))
    events = events["traceEvents"] if isinstance(events, dict) else events
    hlo = _jax_hlo(backend, xs[:steps], ys[:steps])
    names = hlo_op_names(hlo)
    per_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e["name"] in names:
            per_op[f"{e['name']}  {names[e['name']]}"] += e.get("dur", 0) / 1e3 / steps
    return per_op.most_common()


def _jax_hlo(backend, xs, ys) -> str:
    import jax
    import jax.numpy as jnp

    images, labels = jnp.asarray(xs[..., None]), jnp.asarray(ys.astype(np.int32))
    if backend.mode == "tuned":
        fn, args = backend._train_chunk_fn, (backend.params, backend.opt_state, images, labels, jnp.uint32(0))
    else:
        fn, args = backend._train_step_fn, (backend.params, backend.opt_state, images[0], labels[0],
                                            jax.random.PRNGKey(0))
    return jax.jit(fn).lower(*args).compile().as_text()


def profile_torch(mode: str, steps: int, data_dir: str | None) -> list[tuple[str, float]]:
    from torch.profiler import ProfilerActivity, profile

    from mnist_bench.backends.torch_backend.backend import TorchBackend

    recipe, xs, ys = _batches(2 * steps, data_dir)
    backend = TorchBackend(recipe, device="cpu", mode=mode, seed=0)
    backend.train_chunk(xs[:steps], ys[:steps])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        backend.train_chunk(xs[steps:], ys[steps:])
    rows = [(e.key, e.self_cpu_time_total / 1e3 / steps) for e in prof.key_averages()]
    return sorted(rows, key=lambda r: -r[1])


PROFILERS = {"jax": profile_jax, "torch": profile_torch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.perf.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(PROFILERS), default="jax")
    parser.add_argument("--mode", default="compiled")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=12)
    options.add_threads(parser)
    options.add_data_dir(parser)
    args = parser.parse_args(argv)
    from mnist_bench.bench.run.process_setup import configure_process

    configure_process(args.threads, "cpu")
    rows = PROFILERS[args.backend](args.mode, args.steps, args.data_dir)
    total = sum(ms for _, ms in rows)
    print(f"{args.backend}/{args.mode}: {total:.1f} ms per step in profiled operations ({args.threads} threads)")
    for name, ms in rows[:args.top]:
        print(f"{ms:9.2f} ms  {100 * ms / total:5.1f}%  {name[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
