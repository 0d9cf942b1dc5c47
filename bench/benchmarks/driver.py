"""``python -m bench.benchmarks``: the benchmark suite for every backend, one pytest process each.

Measures NumPy's fp32 matmul peak once (``peak.json``), then runs
``pytest bench/benchmarks --mnist-backend NAME`` per backend, each saving
``<out>/<backend>.json`` (pytest-benchmark's JSON, with the suite's
``mnist_bench`` block) and ``<out>/<backend>.log``, and prints one table per
(step, batch size) with the backends side by side (also written to
``<out>/summary.md``). ``--compare BASE_DIR`` hands each backend's saved JSON to
pytest-benchmark (``--benchmark-compare`` with ``--benchmark-compare-fail``,
default ``median:10%``), which fails the run on a regression.

Exit codes: 0 every benchmark ran (known-broken combinations are reported, not
timed); 1 a benchmark failed or regressed; 2 bad input; 130 interrupted
(Ctrl-C or SIGTERM: the running pytest process group is killed with it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from bench.benchmarks import suite, summary
from bench.harness import child_env
from common import registry

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SUITE_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = REPO_ROOT / "results" / "benchmarks"
REGRESSION_MARK = "Performance has regressed"
QUICK = {"rounds": 2, "warmup_rounds": 1, "batch_sizes": "64", "chunk_steps": 2}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmarks", description=__doc__.splitlines()[0],
                                     epilog="Arguments after -- go to every pytest process.")
    parser.add_argument("--backends", default=",".join(registry.BACKENDS),
                        help=f"comma-separated (default: {','.join(registry.BACKENDS)})")
    parser.add_argument("--modes", default="all", help="'all' (default), 'default' or comma-separated mode names")
    parser.add_argument("--device", default="cpu", choices=registry.DEVICES, help="device kind (default cpu)")
    parser.add_argument("--batch-sizes", help="comma-separated (default 64,512)")
    parser.add_argument("--rounds", type=int, help=f"timed rounds per benchmark (default {suite.DEFAULT_ROUNDS})")
    parser.add_argument("--warmup-rounds", type=int,
                        help=f"untimed rounds first (default {suite.DEFAULT_WARMUP_ROUNDS})")
    parser.add_argument("--chunk-steps", type=int,
                        help=f"steps per round (default: about {suite.ROUND_SAMPLES} images per round)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run for CI: 2 rounds after 1 warm-up, batch 64, 2 steps per round "
                             "(explicit options still win)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPU threads for every framework and for the peak probe (default: all usable CPUs)")
    parser.add_argument("--data-dir", help="dataset root holding mnist/ (else $MNIST_BENCH_DATA or the cache)")
    parser.add_argument("--out", type=Path, help=f"output directory (default: {DEFAULT_OUT.relative_to(REPO_ROOT)}"
                                                 "/<UTC time>)")
    parser.add_argument("--no-peak-probe", action="store_true", help="skip the matmul peak probes")
    parser.add_argument("--allow-known-broken", action="store_true",
                        help="time combinations known to compute wrong results (registry.KNOWN_BROKEN)")
    parser.add_argument("--compare", type=Path, metavar="BASE_DIR",
                        help="a saved run directory; each backend is compared with BASE_DIR/<backend>.json")
    parser.add_argument("--compare-fail", action="append", metavar="EXPR",
                        help="pytest-benchmark regression rule, e.g. median:10%% (default with --compare: "
                             "median:10%%; repeatable)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per backend (default 3600)")
    parser.add_argument("--table", type=Path, metavar="RUN_DIR", help="only print the table of a saved run")
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
                   extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", str(SUITE_DIR), "-p", "no:cacheprovider",
           "--mnist-backend", backend, "--mnist-modes", args.modes, "--mnist-device", args.device,
           "--mnist-batch-sizes", resolved["batch_sizes"], "--mnist-rounds", str(resolved["rounds"]),
           "--mnist-warmup-rounds", str(resolved["warmup_rounds"]), "--mnist-chunk-steps", str(resolved["chunk_steps"]),
           "--mnist-threads", str(args.threads), f"--benchmark-json={json_path}"]
    if args.data_dir:
        cmd += ["--mnist-data-dir", args.data_dir]
    if peak_file is not None:
        cmd += ["--mnist-peak-file", str(peak_file)]
    if args.no_peak_probe:
        cmd.append("--mnist-no-peak-probe")
    if args.allow_known_broken:
        cmd.append("--mnist-allow-known-broken")
    if args.compare:
        cmd.append(f"--benchmark-compare={(args.compare / f'{backend}.json').resolve()}")
        for rule in args.compare_fail or ["median:10%"]:
            cmd.append(f"--benchmark-compare-fail={rule}")
    return cmd + extra


def _check(args, resolved: dict) -> dict[str, tuple[str, ...]]:
    """Validate everything before running anything; return each backend's modes."""
    names = [part.strip() for part in args.backends.split(",") if part.strip()]
    if not names:
        raise suite.SuiteError("--backends is empty; choose from " + ", ".join(registry.BACKENDS))
    problems = []
    for name in names:
        try:
            suite.check_backend(name)
        except suite.SuiteError as exc:
            problems.append(str(exc))
    if problems:
        raise suite.SuiteError("\n".join(problems) + "\n(or leave it out with --backends)")
    modes = {name: suite.select_modes(name, args.modes) for name in names}
    suite.parse_batch_sizes(resolved["batch_sizes"])
    if resolved["rounds"] < 1 or resolved["warmup_rounds"] < 0 or resolved["chunk_steps"] < 0 or args.threads < 1:
        raise suite.SuiteError("--rounds and --threads must be at least 1; --warmup-rounds and --chunk-steps 0 or more")
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
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(args, extra: list[str]) -> int:
    from common import peak

    resolved = _resolved(args)
    modes = _check(args, resolved)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` ends the running backend too, like Ctrl-C
    out = args.out or DEFAULT_OUT / dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    out.mkdir(parents=True, exist_ok=True)
    print(f"benchmark results: {out}")
    peak_file = None
    if not args.no_peak_probe:
        result = peak.measure_subprocess(args.threads)
        peak_file = out / summary.PEAK_FILE
        peak_file.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"fp32 matmul peak (NumPy, {args.threads} threads): {result['gflops']:,.1f} GFLOP/s")
    failed = []
    for backend, backend_modes in modes.items():
        if not backend_modes:
            print(f"{backend}: has none of the modes {args.modes!r}; not run")
            continue
        json_path, log_path = out / f"{backend}.json", out / f"{backend}.log"
        json_path.unlink(missing_ok=True)
        cmd = pytest_command(backend, args, resolved, json_path, peak_file, extra)
        print(f"{backend}: {', '.join(backend_modes)} ...", flush=True)
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(shlex.join(cmd) + "\n\n")
            log.flush()
            code = _run_pytest(cmd, log, args.timeout)
        text = log_path.read_text(encoding="utf-8", errors="replace")
        if code == 0:
            print(f"{backend}: ok ({json_path.name}, log {log_path.name})")
            continue
        failed.append(backend)
        if REGRESSION_MARK in text:
            print(f"{backend}: REGRESSED against {args.compare} (log {log_path}):\n{regressions(text)}", file=sys.stderr)
        else:
            why = f"timed out after {args.timeout:g} s" if code is None else f"pytest exited with {code}"
            print(f"{backend}: FAILED, {why}; log {log_path}\n{text[-3000:]}", file=sys.stderr)
    if summary.load_run(out):
        text = summary.table(out)
        (out / summary.SUMMARY_FILE).write_text(f"# Benchmarks\n\n`{shlex.join(['python', '-m', 'bench.benchmarks', *sys.argv[1:]])}`"
                                        f"\n\n{text}\n", encoding="utf-8")
        print("\n" + text)
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
