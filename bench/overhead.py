"""Harness overhead: the harness's training path against a plain loop, side by side.

``python -m bench.overhead --backends torch,tensorflow,jax --modes default,tuned``
runs one process per backend and mode. In it, the backend (as the harness drives it: chunks of
``chunk_steps`` through ``Backend.train_chunk``) and the framework's plain loop
(:mod:`bench.plain_loops`) train on the same real batches, in alternating rounds
after a warm-up, so machine noise hits both alike. Reported: each side's
samples/s per round and the median ratio harness / plain (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(backend_name: str, mode: str, steps: int, rounds: int, chunk_steps: int, data_dir: str | None) -> dict:
    from bench.plain_loops import LOOPS
    from common import datasets, pipeline
    from common.recipe import Recipe
    from common.registry import load_backend

    recipe = Recipe()
    arrays = pipeline.prepare(datasets.load("mnist", data_dir), recipe)
    batches = pipeline.train_batches(arrays, recipe, seed=0, epoch=0)
    xs, ys = map(np.stack, zip(*(next(batches) for _ in range(steps))))
    backend = load_backend(backend_name)(recipe, device="cpu", mode=mode, seed=0)
    plain = LOOPS[backend_name, mode](recipe)

    def harness_path() -> float:
        # What bench.training times: train_chunk per chunk (stacking happens off the clock).
        total = 0.0
        for start in range(0, steps, chunk_steps):
            x, y = xs[start:start + chunk_steps], ys[start:start + chunk_steps]
            total += _time(lambda: backend.train_chunk(x, y))
        return total

    plain(xs[:chunk_steps], ys[:chunk_steps])  # warm-up: tracing and compilation
    harness_path()
    harness_rates, plain_rates = [], []
    for _ in range(rounds):
        plain_rates.append(steps * recipe.batch_size / _time(lambda: plain(xs, ys)))
        harness_rates.append(steps * recipe.batch_size / harness_path())
    ratios = [h / p for h, p in zip(harness_rates, plain_rates)]
    return {
        "backend": backend_name, "mode": mode, "steps": steps, "rounds": rounds, "chunk_steps": chunk_steps,
        "harness_samples_per_s": harness_rates, "plain_samples_per_s": plain_rates,
        "ratio_median": float(np.median(ratios)), "ratios": ratios, "versions": backend.versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,tensorflow,jax")
    parser.add_argument("--modes", default="default", help="comma-separated: 'default', 'tuned' or a mode name")
    parser.add_argument("--steps", type=int, default=100, help="steps per round (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--chunk-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--data-dir")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from bench.worker import configure_process

        configure_process(args.threads, "cpu")
        print(json.dumps(measure(args.backends, args.modes, args.steps, args.rounds, args.chunk_steps,
                                 args.data_dir)))
        return 0
    from bench.harness import child_env
    from bench.plain_loops import LOOPS
    from common.machine import describe
    from common.registry import DEFAULT_MODE

    results = []
    pairs = [(name, DEFAULT_MODE[name] if mode == "default" else mode)
             for name in args.backends.split(",") for mode in args.modes.split(",")]
    for name, mode in pairs:
        if (name, mode) not in LOOPS:
            print(f"no plain loop for {name} in mode {mode!r}; choose from "
                  f"{', '.join(f'{b}/{m}' for b, m in LOOPS)}", file=sys.stderr)
            return 2
    for name, mode in pairs:
        cmd = [sys.executable, "-m", "bench.overhead", "--child", "--backends", name, "--modes", mode,
               "--steps", str(args.steps),
               "--rounds", str(args.rounds), "--chunk-steps", str(args.chunk_steps), "--threads", str(args.threads)]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{name:11s} {result['mode']:9s} harness {np.median(result['harness_samples_per_s']):8,.0f} samples/s  "
              f"plain {np.median(result['plain_samples_per_s']):8,.0f} samples/s  ratio {result['ratio_median']:.3f}")
    if args.out:
        from common.records import write_atomic

        write_atomic(args.out, {"kind": "harness-overhead", "threads": args.threads, "machine": describe(),
                                "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
