"""Harness overhead: what ``mnist-bench run`` reports against a plain loop, in interleaved rounds.

``python -m mnist_bench.bench.perf.overhead --modes default --rounds 5``
runs, in every round and for every backend and mode, two fresh processes one after
the other: a real ``mnist-bench run`` (worker, harness, progress, record: the figure
users see) and the framework's plain loop (:mod:`mnist_bench.bench.perf.plain_loops`, written as its
own MNIST example is). Both train the same steps in the same order with the same
pinning and thread counts, and report steady-state samples/s measured the same way.
The order of the pair alternates by round (A B, then B A), and every pair waits for a
quiet machine first, so drift and noise hit both sides alike. Reported: each side's
samples/s per round and the harness/plain ratio with its 95 % interval from the
paired rounds (:func:`mnist_bench.bench.results.stats.paired_ratio`); 1.0 means no overhead.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from mnist_bench.bench import options
from mnist_bench.bench.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

SIDE_TIMEOUT_S = 1800


class SideFailed(RuntimeError):
    """One side of a round did not produce a figure."""


def harness_side(backend: str, mode: str, args, work: Path, round_index: int) -> dict:
    """One real ``mnist-bench run`` of ``args.steps`` steps; its record's steady state and machine load."""
    from mnist_bench.common import records

    run_dir = work / f"r{round_index}-{backend}-{mode}"
    argv = [sys.executable, "-m", "mnist_bench.bench.cli", "run", "--backends", backend, "--modes", mode, "--device", "cpu",
            "--set", f"train_limit={args.steps * 64}", "--set", "test_limit=640", "--epochs", "1",
            "--chunk-steps", str(args.chunk_steps), "--threads", str(args.threads), "--no-peak-probe",
            "--no-require-quiet", "--quiet", "--out", str(run_dir)]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    _run(argv, f"{backend}/{mode} harness")
    record = records.read(run_dir / f"{backend}-{mode}-cpu-s0{records.RECORD_SUFFIX}")
    if record["status"] != "ok":
        raise SideFailed(f"{backend}/{mode} harness run ended {record['status']}: {record.get('error')}")
    return {"samples_per_s": record["timing"]["steady_samples_per_s"], "contention": record.get("contention")}


def plain_side(backend: str, mode: str, args) -> dict:
    argv = [sys.executable, "-m", "mnist_bench.bench.perf.plain_loops", backend, mode, "--steps", str(args.steps),
            "--chunk-steps", str(args.chunk_steps), "--threads", str(args.threads)]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    result = json.loads(_run(argv, f"{backend}/{mode} plain loop").strip().splitlines()[-1])
    return {"samples_per_s": result["steady_samples_per_s"], "contention": result["contention"]}


def _run(argv: list[str], what: str) -> str:
    from mnist_bench.bench.run import process

    try:
        done = process.run(argv, SIDE_TIMEOUT_S)
    except process.ChildTimeout:
        raise SideFailed(f"{what}: no result within {SIDE_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise SideFailed(f"{what} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def measure(pairs: list[tuple[str, str]], args, say=print) -> list[dict]:
    """Interleaved rounds over every (backend, mode); the order of the two sides alternates by round."""
    from mnist_bench.bench.results import stats
    from mnist_bench.common import contention

    results = {pair: {"backend": pair[0], "mode": pair[1], "harness": [], "plain": []} for pair in pairs}
    with tempfile.TemporaryDirectory(prefix="mnist-bench-overhead-") as tmp:
        for round_index in range(args.rounds):
            for backend, mode in pairs:
                if args.require_quiet:
                    waited = contention.wait_for_quiet(contention.pinned_cpus(args.threads), args.quiet_wait, say)
                    if not waited["quiet"]:
                        say(f"still busy after {waited['waited_s']:g} s; measuring anyway (marked contended)")
                sides = [("harness", lambda: harness_side(backend, mode, args, Path(tmp), round_index)),
                         ("plain", lambda: plain_side(backend, mode, args))]
                for side, run in sides if round_index % 2 == 0 else sides[::-1]:
                    results[backend, mode][side].append(run())
                row = results[backend, mode]
                say(f"round {round_index + 1}/{args.rounds} {backend}/{mode}: harness "
                    f"{row['harness'][-1]['samples_per_s']:,.0f}, plain {row['plain'][-1]['samples_per_s']:,.0f} samples/s")
    for row in results.values():
        harness = [side["samples_per_s"] for side in row["harness"]]
        plain = [side["samples_per_s"] for side in row["plain"]]
        ratio = stats.paired_ratio(harness, plain)
        shares = [(side.get("contention") or {}).get("other_share") for side in row["harness"] + row["plain"]]
        row.update(harness_samples_per_s=harness, plain_samples_per_s=plain, ratio=ratio.ratio,
                   ratio_low=ratio.low, ratio_high=ratio.high, ratio_method=ratio.method, ratio_text=ratio.text(3),
                   max_other_share=max((s for s in shares if s is not None), default=None),
                   contended_sides=sum(bool((side.get("contention") or {}).get("contended"))
                                       for side in row["harness"] + row["plain"]))
    return list(results.values())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.perf.overhead", description=__doc__.splitlines()[0])
    options.add_backends(parser)
    options.add_modes(parser, "default", help="comma-separated: 'default', 'fastest', 'tuned' or a mode name")
    parser.add_argument("--steps", type=int, default=400, help="training steps per side and round (default 400)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--chunk-steps", type=int, default=20)
    options.add_threads(parser)
    options.add_data_dir(parser)
    parser.add_argument("--require-quiet", action=argparse.BooleanOptionalAction, default=True,
                        help="wait for a quiet machine before every pair (default on)")
    parser.add_argument("--quiet-wait", type=options.non_negative_float, default=120.0, help="the longest wait, in seconds (default 120)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    from mnist_bench.bench.perf.plain_loops import plain_loop
    from mnist_bench.common import registry

    args = build_parser().parse_args(argv)
    try:
        pairs = [(name, registry.SELECTORS[mode](name) if mode in registry.SELECTORS else mode)
                 for name in options.backend_names(args.backends.split(",")) for mode in args.modes.split(",")]
        for name, mode in pairs:
            plain_loop(name, mode)  # names what is missing
    except (registry.UnknownBackend, registry.NotOffered) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.rounds < 1 or args.steps < 3 * args.chunk_steps:
        print(f"need --rounds >= 1 and --steps >= 3 x --chunk-steps ({3 * args.chunk_steps}) for a steady state",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        results = measure(pairs, args)
    except SideFailed as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for row in results:
        busy = f"; {row['contended_sides']} contended sides" if row["contended_sides"] else ""
        print(f"{row['backend']:11s} {row['mode']:9s} harness/plain {row['ratio_text']} over {args.rounds} "
              f"interleaved rounds{busy}")
    if args.out:
        from mnist_bench.common.machine import describe
        from mnist_bench.common.records import write_atomic

        write_atomic(args.out, {"kind": "harness-overhead", "command": " ".join(["python -m mnist_bench.bench.perf.overhead", *(argv or sys.argv[1:])]),
                                "threads": args.threads, "steps": args.steps, "rounds": args.rounds,
                                "machine": describe(), "results": results})
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
