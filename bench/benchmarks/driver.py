"""``python -m mnist_bench.bench.benchmarks``: the benchmark suite for every backend, one pytest process each.

Measures NumPy's fp32 matmul peak once (``peak.json``), then runs
``pytest bench/benchmarks --mnist-backend NAME`` per backend, each saving
``<out>/<backend>.json`` (pytest-benchmark's JSON, with the suite's
``mnist_bench`` block) and ``<out>/<backend>.log``, and prints one table per
(step, batch size) with the backends side by side (also written to
``<out>/summary.md``). ``--compare BASE_DIR`` hands each backend's saved JSON to
pytest-benchmark (``--benchmark-compare`` with ``--benchmark-compare-fail``,
default ``median:10%``), which fails the run on a regression.

Before each pytest process the driver waits, up to ``--quiet-wait`` seconds, for
the CPUs it pins to to be quiet (:func:`mnist_bench.common.contention.wait_for_quiet`); what
it saw is the JSON's ``mnist_bench.quiet_wait``. Still busy: ``--if-busy proceed``
goes on and the figures say they are contended; ``stop`` exits 1. ``--repeat N``
runs N passes, each backend once per pass in turn, saving
``<backend>.pass<k>.json``; the summary then gives medians over passes and paired
ratio intervals.

Exit codes: 0 every benchmark ran (known-broken combinations are reported, not
timed); 1 a benchmark failed or regressed, or the machine stayed busy under
``--if-busy stop``; 2 bad input; 130 interrupted (Ctrl-C or SIGTERM: the running
pytest process group is killed with it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from mnist_bench.bench.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from mnist_bench.bench import options
from mnist_bench.bench.benchmarks import suite, summary, sweep
from mnist_bench.bench.run import peak_probe, process
from mnist_bench.common import contention, registry

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SUITE_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = REPO_ROOT / "results" / "benchmarks"
REGRESSION_MARK = "Performance has regressed"
DEFAULT_QUIET_WAIT_S = 120.0
QUICK = {"rounds": 2, "warmup_rounds": 1, "batch_sizes": "64", "chunk_steps": 2}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.benchmarks", description=__doc__.splitlines()[0],
                                     epilog="Arguments after -- go to every pytest process.")
    options.add_backends(parser)
    options.add_modes(parser, "all")
    options.add_device(parser, "cpu")
    parser.add_argument("--batch-sizes", help="comma-separated (default 64,512); e.g. 64,128,256,512,1024 for the "
                                              "batch sweep, whose plot summary.md shows")
    options.add_precision(parser, help="comma-separated precisions (default fp32); e.g. fp32,bf16: each benchmark "
                                       "in each, side by side, and summary.md gives bf16 over fp32 per backend")
    parser.add_argument("--rounds", type=int, help=f"timed rounds per benchmark (default {suite.DEFAULT_ROUNDS})")
    parser.add_argument("--warmup-rounds", type=int,
                        help=f"untimed rounds first (default {suite.DEFAULT_WARMUP_ROUNDS})")
    parser.add_argument("--chunk-steps", type=int,
                        help=f"steps per round (default: about {suite.ROUND_SAMPLES} images per round)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run for CI: 2 rounds after 1 warm-up, batch 64, 2 steps per round "
                             "(explicit options still win)")
    options.add_threads(parser, help="CPU threads for every framework and for the peak probe (default: all usable CPUs)")
    options.add_data_dir(parser)
    parser.add_argument("--out", type=Path, help=f"output directory (default: {DEFAULT_OUT.relative_to(REPO_ROOT)}"
                                                 "/<UTC time>)")
    parser.add_argument("--no-peak-probe", action="store_true", help="skip the matmul peak probes")
    parser.add_argument("--allow-known-broken", action="store_true",
                        help="time combinations known to compute wrong results (each spec's known_broken)")
    parser.add_argument("--compare", type=Path, metavar="BASE_DIR",
                        help="a saved run directory; each backend is compared with BASE_DIR/<backend>.json")
    parser.add_argument("--compare-fail", action="append", metavar="EXPR",
                        help="pytest-benchmark regression rule, e.g. median:10%% (default with --compare: "
                             "median:10%%; repeatable)")
    parser.add_argument("--timeout", type=options.positive_float, default=3600.0, help="seconds per backend (default 3600)")
    parser.add_argument("--table", type=Path, metavar="RUN_DIR", help="only print the table of a saved run")
    parser.add_argument("--require-quiet", action=argparse.BooleanOptionalAction, default=True,
                        help="before each pytest process, wait for the CPUs it pins to to be quiet (default: on)")
    parser.add_argument("--quiet-wait", type=options.non_negative_float, default=DEFAULT_QUIET_WAIT_S, metavar="S",
                        help=f"longest wait for a quiet machine, in seconds (default {DEFAULT_QUIET_WAIT_S:g})")
    parser.add_argument("--if-busy", choices=("proceed", "stop"), default="proceed",
                        help="still busy after the wait: proceed (default; that backend's figures are marked "
                             "contended) or stop (exit 1)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run every backend N times in interleaved passes (torch, tensorflow, flax-linen, torch, ...); "
                             "N >= 2 gives medians over passes and paired ratio intervals (default 1)")
    return parser


def _resolved(args) -> dict:
    quick = QUICK if args.quick else {}

    def pick(name, default):
        value = getattr(args, name)
        return value if value is not None else quick.get(name, default)

    return {
        "rounds": pick("rounds", suite.DEFAULT_ROUNDS),
        "warmup_rounds": pick("warmup_rounds", suite.DEFAULT_WARMUP_ROUNDS),
        "batch_sizes": pick("batch_sizes", ",".join(map(str, suite.DEFAULT_BATCH_SIZES))),
        "chunk_steps": pick("chunk_steps", 0),
    }


def pytest_command(backend: str, args, resolved: dict, json_path: Path, peak_file: Path | None,
                   extra: list[str], quiet_wait: dict | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", str(SUITE_DIR), "-p", "no:cacheprovider",
           "--mnist-backend", backend, "--mnist-modes", args.modes, "--mnist-device", args.device,
           "--mnist-batch-sizes", resolved["batch_sizes"], "--mnist-rounds", str(resolved["rounds"]),
           "--mnist-warmup-rounds", str(resolved["warmup_rounds"]), "--mnist-chunk-steps", str(resolved["chunk_steps"]),
           "--mnist-threads", str(args.threads), "--mnist-precisions", ",".join(args.precision),
           f"--benchmark-json={json_path}"]
    if args.data_dir:
        cmd += ["--mnist-data-dir", args.data_dir]
    if peak_file is not None:
        cmd += ["--mnist-peak-file", str(peak_file)]
    if args.no_peak_probe:
        cmd.append("--mnist-no-peak-probe")
    if args.allow_known_broken:
        cmd.append("--mnist-allow-known-broken")
    if quiet_wait is not None:
        cmd += ["--mnist-quiet-wait", json.dumps(quiet_wait)]
    if args.compare:
        cmd.append(f"--benchmark-compare={(args.compare / f'{backend}.json').resolve()}")
        for rule in args.compare_fail or ["median:10%"]:
            cmd.append(f"--benchmark-compare-fail={rule}")
    return cmd + extra


def _check(args, resolved: dict) -> dict[str, tuple[str, ...]]:
    """Validate everything before running anything; return each backend's modes."""
    names = [part.strip() for part in args.backends.split(",") if part.strip()]
    if not names:
        raise suite.SuiteError("--backends is empty; choose from " + ", ".join(registry.names()))
    try:
        names = options.backend_names(names)
    except registry.UnknownBackend as exc:
        raise suite.SuiteError(str(exc)) from None
    problems = []
    for name in names:
        try:
            suite.check_backend(name)
        except suite.SuiteError as exc:
            problems.append(str(exc))
    if problems:
        raise suite.SuiteError("\n".join(problems) + "\n(or leave it out with --backends)")
    modes = {name: suite.select_modes(name, args.modes) for name in names}
    for name in names:
        suite.check_precisions(name, tuple(args.precision), args.device)
    suite.parse_batch_sizes(resolved["batch_sizes"])
    if resolved["rounds"] < 1 or resolved["warmup_rounds"] < 0 or resolved["chunk_steps"] < 0 or args.threads < 1:
        raise suite.SuiteError("--rounds and --threads must be at least 1; --warmup-rounds and --chunk-steps 0 or more")
    if args.repeat < 1 or args.quiet_wait < 0:
        raise suite.SuiteError("--repeat must be at least 1 and --quiet-wait 0 or more")
    if args.compare_fail and not args.compare:
        raise suite.SuiteError("--compare-fail needs --compare BASE_DIR")
    if args.compare:
        missing = [str(args.compare / f"{name}.json") for name in names
                   if modes[name] and not (args.compare / f"{name}.json").is_file()]
        if missing:
            raise suite.SuiteError("nothing to compare with: " + ", ".join(missing) + " not found")
    return modes


def regressions(log_text: str) -> str:
    """pytest-benchmark's list of failed regression checks, from a pytest log."""
    after = log_text[log_text.index(REGRESSION_MARK):].splitlines()[1:]
    return "\n".join(line for line in itertools.takewhile(lambda line: not line.startswith("---"), after))


# --- running ------------------------------------------------------------------------------


def _run_pytest(cmd: list[str], log, timeout: float) -> int | None:
    """pytest's exit code, or None on timeout. Its whole process group dies with the driver:
    an interrupted driver must not leave a benchmark running that would load the machine."""
    proc = process.start(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    return process.wait(proc, timeout)


def plan(backends: list[str], passes: int) -> list[tuple[int, str]]:
    """(pass, backend) in running order: every backend once per pass, so drift over the run hits each alike."""
    return [(number, backend) for number in range(1, passes + 1) for backend in backends]


def _label(backend: str, number: int, passes: int) -> str:
    return backend if passes == 1 else f"{backend} (pass {number}/{passes})"


def check_machine(args, cpus: list[int], label: str) -> dict:
    """Wait (as asked) for ``cpus`` to be quiet before a pytest process; return its ``quiet_wait`` block.

    Without ``--require-quiet`` one window is still measured, so the record says what the machine was doing.
    """
    def say(text: str) -> None:
        print(f"{label}: {text}", flush=True)

    max_wait = args.quiet_wait if args.require_quiet else 0.0
    wait = contention.wait_for_quiet(cpus, max_wait, say)
    block = {**wait, "cpus": cpus, "required": args.require_quiet, "max_wait_s": max_wait, "if_busy": args.if_busy}
    if not wait["quiet"]:
        block["busiest"] = contention.busiest(exclude=[os.getpid()])
    return block


def _run_backend(backend: str, number: int, args, resolved: dict, out: Path, peak_file: Path | None,
                 extra: list[str], quiet_wait: dict) -> bool:
    """One pytest process; True if every benchmark ran (and none regressed)."""
    label = _label(backend, number, args.repeat)
    stem = summary.result_stem(backend, number, args.repeat)
    json_path, log_path = out / f"{stem}.json", out / f"{stem}.log"
    json_path.unlink(missing_ok=True)
    cmd = pytest_command(backend, args, resolved, json_path, peak_file, extra, quiet_wait)
    print(f"{label}: running ...", flush=True)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(shlex.join(cmd) + "\n\n")
        log.flush()
        code = _run_pytest(cmd, log, args.timeout)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if code == 0:
        print(f"{label}: ok ({json_path.name}, log {log_path.name})")
        return True
    if REGRESSION_MARK in text:
        print(f"{label}: REGRESSED against {args.compare} (log {log_path}):\n{regressions(text)}", file=sys.stderr)
    else:
        why = f"timed out after {args.timeout:g} s" if code is None else f"pytest exited with {code}"
        print(f"{label}: FAILED, {why}; log {log_path}\n{text[-3000:]}", file=sys.stderr)
    return False


def run(args, extra: list[str]) -> int:
    resolved = _resolved(args)
    modes = _check(args, resolved)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` ends the running backend too, like Ctrl-C
    out = args.out or DEFAULT_OUT / dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    out.mkdir(parents=True, exist_ok=True)
    print(f"benchmark results: {out}")
    cpus = contention.pinned_cpus(args.threads)  # what every pytest process pins to (mnist_bench.bench.run.process_setup.configure_process)
    peak_file = None
    if not args.no_peak_probe:
        peak_wait = check_machine(args, cpus, "peak probe")  # a busy machine would lower the peak too
        result = {**peak_probe.measure(args.threads), "quiet_wait": peak_wait}
        peak_file = out / summary.PEAK_FILE
        peak_file.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"fp32 matmul peak (NumPy, {args.threads} threads): {result['gflops']:,.1f} GFLOP/s")
    for backend, backend_modes in modes.items():
        if not backend_modes:
            print(f"{backend}: has none of the modes {args.modes!r}; not run")
        else:
            print(f"{backend}: {', '.join(backend_modes)}")
    failed, stopped = [], False
    for number, backend in plan([name for name, names in modes.items() if names], args.repeat):
        label = _label(backend, number, args.repeat)
        quiet_wait = {**check_machine(args, cpus, label), "pass": number, "passes": args.repeat}
        if quiet_wait["quiet"]:
            print(f"{label}: machine quiet: other processes used {quiet_wait['other_share'] or 0:.0%} of "
                  f"CPUs {','.join(map(str, cpus))}")
        else:
            busy = (f"other processes used {quiet_wait['other_share']:.0%} of CPUs {','.join(map(str, cpus))} "
                    f"(quiet is {quiet_wait['threshold']:.0%} or less) after {quiet_wait['waited_s']:g} s; "
                    f"busiest: {contention.busiest_text(quiet_wait['busiest'])}")
            if args.require_quiet and args.if_busy == "stop":
                print(f"{label}: STOPPED, the machine is busy: {busy}. Nothing more was run; wait for a quiet "
                      "machine, or go on anyway with --if-busy proceed", file=sys.stderr)
                failed.append(backend)
                stopped = True
                break
            print(f"{label}: ⚠ machine busy, going on: {busy}. Its figures are contended: see each benchmark's "
                  "contention in the table", flush=True)
        if not _run_backend(backend, number, args, resolved, out, peak_file, extra, quiet_wait):
            failed.append(backend)
    passes = summary.load_passes(out)
    if passes:
        try:
            sweep.plot(summary.tagged_infos(passes), out / sweep.PLOT_FILE)
        except ImportError:  # matplotlib is the report extra's; the tables do not need it
            print("batch-sweep plot skipped: matplotlib is not installed (pip install 'mnist-bench[report]')",
                  file=sys.stderr)
        text = summary.table(out)
        command = shlex.join(["python", "-m", "mnist_bench.bench.benchmarks", *sys.argv[1:]])
        (out / summary.SUMMARY_FILE).write_text(f"# Benchmarks\n\n`{command}`\n\n{text}\n", encoding="utf-8")
        print("\n" + text)
    if stopped:
        print("stopped before every backend ran: the machine was busy (--if-busy stop)", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = []
    if "--" in argv:
        index = argv.index("--")
        argv, extra = argv[:index], argv[index + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.table:
            print(summary.table(args.table))
            return EXIT_OK
        return run(args, extra)
    except suite.SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; the running backend was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
