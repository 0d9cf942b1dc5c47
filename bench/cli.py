"""``mnist-bench``: run matched training sweeps, and report and compare their results.

A run directory never loses a result: ``run --out DIR`` refuses a directory that
already holds records (``--resume DIR`` completes its plan, ``--overwrite``
re-measures its runs in place, replacing each record only when its new one is
written), and ``--resume`` refuses a request whose plan differs from the
directory's ``manifest.json`` unless ``--extend`` adds runs measured the same way.

Exit codes: 0 success; 1 a run failed (its record says why), a record could not be
written (the message names the file, the error and the runs left without a record),
or ``compare`` found a regression; 2 bad input, a run directory's rules refused the
request, or ``compare`` was asked to compare runs of different recipes or versions
(the message names what differs and the way out); 3 ``compare`` could not judge a
speed because a run was measured on a busy machine; 130 interrupted (the first
Ctrl-C or SIGTERM; the in-flight run is recorded as interrupted, later ones are ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

from mnist_bench.bench import options, validate
from mnist_bench.bench.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from mnist_bench.bench.options import csv, fraction, positive_float, positive_int
from mnist_bench.bench.outside_text import for_terminal
from mnist_bench.common import parallel
from mnist_bench.common import precision as numeric
from mnist_bench.common import recipe as recipes
from mnist_bench.common import registry

DEFAULT_RESULTS = Path("results") / "runs"


class UsageError(ValueError):
    """Bad command-line input; reported with exit code 2."""


def _device_counts(text: str) -> list[int]:
    counts = [positive_int(part) for part in csv(text)]
    if not counts:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return list(dict.fromkeys(counts))


def _add_run(run: argparse.ArgumentParser) -> None:
    """``mnist-bench run``'s options."""
    options.add_backends(run)  # every built-in implementation but the oracle
    options.add_modes(run, "default", help="'default' (each backend's idiomatic mode), 'fastest' (each backend's "
                                           "fastest proven mode), 'all', or comma-separated mode names (eager, "
                                           "compiled, xla, tuned, ...); each backend runs those it has")
    options.add_device(run, "auto", help="device kind (default: auto = gpu, then tpu, then cpu)")
    options.add_precision(run)
    run.add_argument("--devices", type=_device_counts, default=[1], metavar="N[,N...]",
                     help="data-parallel devices per host (default 1); several, e.g. 1,2, run each and the report "
                          "shows scaling efficiency. The recipe's batch is the global batch, split across devices")
    run.add_argument("--hosts", type=positive_int, default=1,
                     help="hosts in a multi-host run (default 1): with --executor slurm, one job of that many nodes; "
                          "else start the same command on every host with its --host-rank (docs/data-parallel.md)")
    run.add_argument("--host-rank", type=int, default=0, help="this host's rank, 0 to --hosts - 1 (default 0)")
    run.add_argument("--coordinator", metavar="HOST:PORT",
                     help="with --hosts > 1: an address of host 0 every host can reach, with a free port")
    run.add_argument("--seeds", type=positive_int, default=1, help="number of seeds per configuration (default 1)")
    run.add_argument("--first-seed", type=options.seed, default=0, help="first seed (default 0; seeds are below 2**32)")
    run.add_argument("--preset", default="default", help=f"recipe preset: {', '.join(recipes.PRESETS)}")
    run.add_argument("--recipe", type=Path, help="TOML file with recipe fields (applied over the preset)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override one recipe field, e.g. --set learning_rate=0.05 (repeatable)")
    run.add_argument("--epochs", type=positive_int, help="shorthand for --set epochs=N")
    options.add_data_dir(run, help="dataset root holding mnist/ and fashion-mnist/ (else $MNIST_BENCH_DATA, "
                                   "else the per-user cache, downloading if needed)")
    options.add_threads(run)
    run.add_argument("--timeout", type=positive_float, default=3600.0, help="per-run timeout in seconds (default 3600)")
    run.add_argument("--chunk-steps", type=positive_int, default=20, help="steps between clock reads (default 20)")
    run.add_argument("--target-accuracy", type=fraction, default=0.99, help="for time-to-target (default 0.99)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help=f"a new run directory (default: {DEFAULT_RESULTS}/<UTC time>); one "
                                                "that already holds records is refused unless --overwrite")
    where.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="complete RUN_DIR's plan (give the options that planned it; manifest.json is checked): "
                            "re-run only runs whose record is missing or not ok")
    run.add_argument("--overwrite", action="store_true",
                     help="with --out on a directory holding records: re-run the requested runs there, replacing "
                          "each record only when its new one is written (the settings must match manifest.json)")
    run.add_argument("--extend", action="store_true",
                     help="with --resume: also add the requested runs that RUN_DIR's plan lacks (same settings)")
    run.add_argument("--allow-known-broken", action="store_true",
                     help="run modes known to compute wrong results here (see docs/framework-bugs.md)")
    run.add_argument("--no-peak-probe", action="store_true",
                     help="skip measuring the fp32 matmul peak (records then have no fraction of peak)")
    run.add_argument("--require-quiet", action=argparse.BooleanOptionalAction, default=True,
                     help="before each run, wait for the CPUs it will use to be quiet (other processes at most "
                          "3%% of them), saying what it waits on (default: on; --no-require-quiet skips the wait)")
    run.add_argument("--quiet-wait", type=positive_float, default=120.0, metavar="S",
                     help="how long to wait for a quiet machine before each run (default 120 s)")
    run.add_argument("--if-busy", choices=("proceed", "stop"), default="proceed",
                     help="still busy after --quiet-wait: run anyway, marked contended in its record and the "
                          "report (default), or stop the sweep (exit 1; --resume continues it)")
    run.add_argument("--report", action="store_true", help="write report.md and report.html into the run directory")
    run.add_argument("--quiet", action="store_true", help="no progress and no summary; exit code only")
    cluster = run.add_argument_group(
        "cluster", "--executor slurm submits every run as one SLURM job (through submitit; docs/cluster.md). The run "
                   "directory (--out/--resume) must be on a filesystem the nodes share: each job writes its record, "
                   "log and progress there. A job's time limit is --timeout plus the quiet waits and 2 minutes of "
                   "startup; its CPUs per task are --threads; --device gpu asks for --devices GPUs per task")
    cluster.add_argument("--executor", choices=("local", "slurm"), default="local",
                         help="local: run each run here, one after another (default); slurm: one SLURM job per run")
    cluster.add_argument("--partition", help="SLURM partition (sbatch --partition; default: the cluster's)")
    cluster.add_argument("--account", help="SLURM account to charge (sbatch --account)")
    cluster.add_argument("--mem", help="memory per job, as sbatch --mem takes it (e.g. 16G)")
    cluster.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                         help="another sbatch option, e.g. --sbatch=--exclusive or --sbatch=--constraint=zen3 "
                              "(repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub.add_parser("run", help="train the recipe on each backend, one worker process per run"))

    report = sub.add_parser("report", help="write Markdown and HTML reports from run directories")
    report.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    report.add_argument("--out", type=Path, help="output directory (default: the first RUN_DIR)")
    report.add_argument("--strict", action="store_true", help="fail on a bad record file instead of skipping it")

    compare = sub.add_parser("compare", help="compare two result sets; exit 1 on a regression")
    compare.add_argument("base", type=Path, metavar="BASE_DIR")
    compare.add_argument("new", type=Path, metavar="NEW_DIR")
    compare.add_argument("--threshold", type=fraction, default=0.10,
                         help="samples/s drop that counts as a regression (default 0.10 = 10%%)")
    compare.add_argument("--accuracy-threshold", type=fraction, default=0.005,
                         help="test-accuracy drop that counts as a regression (default 0.005)")
    compare.add_argument("--allow-contended", action="store_true",
                         help="judge speed even where a run was measured on a busy machine (by default such a "
                              "match is not judged and the verdict is INCONCLUSIVE, exit 3)")
    compare.add_argument("--allow-different-recipes", action="store_true",
                         help="judge even when BASE and NEW differ in recipe, threads, or mnist-bench or framework "
                              "versions (by default such a comparison is REFUSED, exit 2, listing what differs)")

    export = sub.add_parser("export-csv", help="one CSV row per run record")
    export.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    export.add_argument("--out", type=Path, required=True, help="CSV file to write")

    par = sub.add_parser("parity", help="numerical parity probes between backends and modes; writes parity.json")
    options.add_backends(par)
    options.add_modes(par, "all")
    options.add_device(par, "cpu", auto=False)
    options.add_precision(par, help="precisions to probe (default fp32); below fp32 each probe is measured "
                                    "against the float64 oracle only, as close as the precision allows "
                                    "(bench/checks/oracle.py)")
    options.add_data_dir(par)
    options.add_threads(par)
    par.add_argument("--out", type=Path, required=True, help="directory for parity.json (e.g. a run directory)")
    par.add_argument("--side-by-side", action="store_true",
                     help="CPU only: probe in as many single-thread processes at once as there are CPUs "
                          "(--threads is then not used); faster, and every check passes alike")

    sub.add_parser("backends", help="list backends, whether they are installed, and their modes")
    return parser


def build_recipe(args) -> recipes.Recipe:
    recipe = recipes.preset(args.preset)
    if args.recipe:
        try:
            recipe = recipes.load_toml(args.recipe, recipe)
        except UnicodeDecodeError as exc:  # load_toml catches OSError only
            raise UsageError(f"recipe file {str(args.recipe)!r} is not UTF-8 text: {exc}") from None
    changes = dict(recipes.parse_override(text) for text in args.overrides)
    if args.epochs:
        changes["epochs"] = args.epochs
    return recipe.replace(**changes) if changes else recipe


def plan(args, devices: list[int] = (1,), hosts: int = 1) -> list:
    from mnist_bench.bench.run.harness import RunSpec

    backends = csv(args.backends)
    if not backends:
        raise UsageError("--backends is empty; choose from " + ", ".join(registry.names()))
    backends = options.backend_names(backends)  # raises UnknownBackend naming the choices
    missing = [registry.not_installed_message(name) for name in backends if not registry.is_available(name)]
    if missing:
        raise UsageError("\n".join(missing) + "\n(or leave it out with --backends)")
    validate.check_device_offered(backends, args.device)
    try:
        chosen = {b: list(registry.select_modes(b, args.modes)) for b in backends}
    except registry.UnknownMode as exc:
        raise UsageError(str(exc)) from None
    for m in csv(args.modes) if args.modes != "all" else ():
        if m not in registry.SELECTORS and not any(m in modes for modes in chosen.values()):
            raise UsageError(f"mode {m!r} is not offered by any of {', '.join(backends)}")
    if not args.allow_known_broken:
        for b in backends:
            for m in chosen[b]:
                why = registry.known_broken(b, m, args.device)
                if why:
                    raise UsageError(f"{b}/{m} on {args.device} is known to be wrong: {why}. "
                                     "Leave it out, or pass --allow-known-broken to measure it anyway")
    precisions = list(getattr(args, "precision", [numeric.DEFAULT]))
    check_precisions(backends, precisions, args.device, devices, hosts)
    validate.check_sweep(args.first_seed, args.seeds,
                         len(devices) * len(precisions) * sum(len(modes) for modes in chosen.values()))
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    specs = []
    for d in devices:
        for b in backends:
            modes = chosen[b]
            if d * hosts > 1:
                if not registry.spec(b).offers("data_parallel"):
                    raise UsageError(f"{b} has no data-parallel implementation (its spec sets no data_parallel), "
                                     f"so it cannot run on --devices {d} --hosts {hosts}; leave it out with --backends")
                offered = registry.spec(b).data_parallel_modes
                if args.modes == "all":
                    modes = [m for m in modes if m in offered]
                elif any(m not in offered for m in modes):
                    raise UsageError(f"{b} runs data-parallel (--devices {d}, --hosts {hosts}) in mode(s) "
                                     f"{', '.join(offered)} only, not {', '.join(m for m in modes if m not in offered)}; "
                                     "choose --modes default or all")
            specs += [RunSpec(b, m, args.device, s, d, hosts, p) for s in seeds for m in modes for p in precisions]
    # Seed-major: each seed's runs of every backend, mode and precision follow one another, so the report pairs
    # them by seed (a mode's precisions side by side) and a slow drift of the machine hits every group alike.
    return sorted(specs, key=lambda spec: (spec.seed, spec.devices, list(backends).index(spec.backend)))


def check_precisions(backends: list[str], precisions: list[str], device: str, devices: list[int], hosts: int) -> None:
    """Refuse, before any run starts, a precision an implementation does not offer or the device cannot do."""
    from mnist_bench.common import machine

    for p in precisions:
        why = numeric.refusal(p, device, machine.cpu_flags()) if device != "auto" else None
        if why:
            raise UsageError(why)
    for b in backends:
        lacking = [p for p in precisions if p not in registry.spec(b).precisions]
        if lacking:
            offering = [name for name in registry.names() if set(lacking) <= set(registry.spec(name).precisions)]
            raise UsageError(f"{b} does not train in {', '.join(lacking)} (its spec offers "
                             f"{', '.join(registry.spec(b).precisions)}); leave it out with --backends"
                             + (f", or choose from {', '.join(offering)}" if offering else ""))
    if precisions != [numeric.DEFAULT] and any(d * hosts > 1 for d in devices):
        raise UsageError("data-parallel runs (--devices or --hosts above 1) train in fp32 only for now; "
                         "run the other precisions on one device")


def check_topology(args, recipe: recipes.Recipe) -> None:
    """Refuse, before any run starts, device counts and host settings that cannot work."""
    placed_by_slurm = args.executor == "slurm"
    if placed_by_slurm and (args.host_rank or args.coordinator):
        raise UsageError(f"--{'host-rank' if args.host_rank else 'coordinator'} is for --executor local: under "
                         "--executor slurm each host's rank and the coordinator come from the job's node list; "
                         "leave it out")
    if args.hosts > 1 and args.device == "auto":
        raise UsageError(f"--hosts {args.hosts} needs an explicit --device (cpu, gpu or tpu): every host must "
                         "agree on it before the frameworks connect")
    try:
        for d in args.devices:
            parallel.check(parallel.Topology(d, args.hosts, args.host_rank, args.coordinator), recipe.batch_size,
                           cpus=args.threads if args.device == "cpu" else None, needs_coordinator=not placed_by_slurm)
    except parallel.TopologyError as exc:
        raise UsageError(str(exc)) from None


def print_summary(records: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="mnist-bench results")
    for column in ("run", "status", "test acc", "macro F1", "samples/s (median)", "first step s", "to target s", "wall s"):
        table.add_column(column, justify="left" if column in ("run", "status") else "right")
    for r in records:
        ok = r["status"] == "ok"
        test = r["final"]["test"] if ok else {}
        timing = r.get("timing", {}) if ok else {}

        def fmt(value, spec):
            return format(value, spec) if isinstance(value, (int, float)) else "-"

        table.add_row(
            # Text, not markup: a run id or status from a record file is data.
            Text(for_terminal(r["run_id"])), Text(for_terminal(r["status"]), style=None if ok else "red"),
            fmt(test.get("accuracy"), ".4f"),
            fmt(test.get("macro_f1"), ".4f"), fmt(timing.get("steady_samples_per_s"), ",.0f"),
            fmt(timing.get("first_step_s"), ".2f"), fmt(timing.get("time_to_target_s"), ".1f"),
            fmt(timing.get("total_wall_s"), ".1f"),
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    for r in records:
        if r["status"] != "ok":
            print(for_terminal(f"{r['run_id']}: {r['status']}: {(r.get('error') or {}).get('message', '')}"),
                  file=sys.stderr)


def resolve_devices(specs: list, args) -> list:
    """``specs`` with ``--device auto`` resolved (:mod:`mnist_bench.bench.run.device_probe`).

    A run's device is part of its identity (its run id, its record's path, what ``compare``
    matches), so it is known before the run starts, even for a run that never finishes.
    """
    from mnist_bench.bench.run import device_probe

    try:
        specs = device_probe.resolve(specs, args.threads)
    except device_probe.DeviceProbeFailed as exc:
        raise UsageError(f"{exc}; name the device with --device cpu, gpu or tpu") from None
    if not args.allow_known_broken:
        for spec in specs:
            if why := registry.known_broken(spec.backend, spec.mode, spec.device):
                raise UsageError(f"{spec.backend}/{spec.mode} on {spec.device} (what --device {args.device} means "
                                 f"here) is known to be wrong: {why}. Leave it out, or pass --allow-known-broken")
    return specs


def _slurm_options(args):
    """--executor slurm's options, checked; None for --executor local (which refuses them)."""
    from mnist_bench.bench.run import slurm_executor

    given = [name for name in ("partition", "account", "mem", "sbatch") if getattr(args, name)]
    if args.executor != "slurm":
        if given:
            raise UsageError(f"--{given[0]} is a SLURM option: add --executor slurm, or leave it out")
        return None
    try:
        for text in args.sbatch:
            slurm_executor.sbatch_option(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return slurm_executor.SlurmOptions(partition=args.partition, account=args.account, mem=args.mem,
                                       sbatch=tuple(args.sbatch))


def cmd_run(args) -> int:
    from mnist_bench.bench.run import harness, interrupts, progress, slurm_executor
    from mnist_bench.bench.run import run_dir as run_dirs

    recipe = build_recipe(args)
    check_topology(args, recipe)
    specs = plan(args, args.devices, args.hosts)
    if args.overwrite and not args.out:
        raise UsageError("--overwrite re-runs runs in the directory given with --out; --resume keeps ok runs")
    if args.extend and not args.resume:
        raise UsageError("--extend adds runs to the plan of the directory given with --resume RUN_DIR")
    if args.resume:
        if not args.resume.is_dir():
            raise UsageError(f"--resume {args.resume}: no such run directory")
        run_dir, action = args.resume, "extend" if args.extend else "resume"
    else:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        run_dir, action = args.out or DEFAULT_RESULTS / stamp, "overwrite" if args.overwrite else "out"
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--out {run_dir}: exists and is not a directory; choose a run directory")
    validate.writable_dir(run_dir, "--resume" if args.resume else "--out")
    slurm_options = _slurm_options(args)
    validate.check_data(recipe, args.data_dir, say=lambda message: None if args.quiet else print(message, file=sys.stderr))
    try:
        # Ctrl-C or SIGTERM (a scheduler, `kill`) ends the sweep once: the current worker is stopped and
        # recorded as interrupted, further signals are ignored while that happens, and --resume does the rest.
        with interrupts.stop_once():
            specs = resolve_devices(specs, args)
            config = harness.SweepConfig(
                specs=tuple(specs), recipe=recipe, run_dir=run_dir, threads=args.threads, timeout_s=args.timeout,
                command=shlex.join(["mnist-bench", *sys.argv[1:]]), data_dir=args.data_dir,
                chunk_steps=args.chunk_steps, target_accuracy=args.target_accuracy, action=action,
                allow_known_broken=args.allow_known_broken, peak_probe=not args.no_peak_probe,
                host_rank=args.host_rank, coordinator=args.coordinator,
                require_quiet=args.require_quiet, quiet_wait_s=args.quiet_wait, if_busy=args.if_busy,
            )
            if not args.quiet:
                print(f"run directory: {run_dir}  ({len(specs)} runs, {args.threads} threads each)")
            display = progress.make_display(args.quiet)
            after_run = (lambda: _rewrite_report(run_dir, quiet=True)) if args.report else None
            if args.executor == "slurm":
                results = slurm_executor.run_sweep(config, slurm_options, display, after_run=after_run)
            else:
                results = harness.run_sweep(config, display, after_run=after_run)
    except (harness.RunDirBusy, run_dirs.DirectoryRefused) as exc:
        raise UsageError(str(exc)) from None
    except slurm_executor.SlurmUnavailable as exc:
        print(f"mnist-bench run: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        if args.report:
            _rewrite_report(run_dir, quiet=args.quiet)
        print(f"\ninterrupted; finished runs are in {run_dir}; complete them with: "
              f"mnist-bench run --resume {run_dir} <same options>", file=sys.stderr)
        return EXIT_INTERRUPTED
    except harness.MachineBusy as exc:
        print(f"stopped: the machine is busy: {exc}. Finished runs are in {run_dir}; when it is quiet, complete "
              f"them with: mnist-bench run --resume {run_dir} <same options>", file=sys.stderr)
        return EXIT_FAILED
    except harness.NotRecorded as exc:
        print(f"mnist-bench run: error: {exc}\nthe sweep stopped; runs without a record ({len(exc.unrecorded)}): "
              f"{', '.join(exc.unrecorded)}\nfree the disk (or make {run_dir} writable), then complete them with: "
              f"mnist-bench run --resume {run_dir} <same options>", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        print_summary(results)
    if args.report:
        _rewrite_report(run_dir, quiet=args.quiet)
    return EXIT_OK if all(r["status"] == "ok" for r in results) else EXIT_FAILED


def _rewrite_report(run_dir: Path, quiet: bool) -> None:
    """Write ``run_dir``'s report of the runs recorded so far; a failure is told, never fatal to the sweep."""
    from mnist_bench.bench.results import report

    try:
        paths = report.write_report([run_dir], run_dir)
    except Exception as exc:  # noqa: BLE001 - a report is rewritten after every run; the sweep goes on
        print(f"report not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    if not quiet:
        print("report: " + ", ".join(str(p) for p in paths.values()))


def cmd_report(args) -> int:
    from mnist_bench.bench.results import report

    validate.run_dirs_with_records(args.run_dirs)
    validate.writable_dir(args.out or args.run_dirs[0], "--out")
    paths = report.write_report(args.run_dirs, args.out or args.run_dirs[0], strict=args.strict,
                                warn=lambda message: print(for_terminal(f"warning: {message}"), file=sys.stderr))
    for path in paths.values():
        print(path)
    return EXIT_OK


def cmd_compare(args) -> int:
    from mnist_bench.bench.results import compare

    result = compare.compare([args.base], [args.new], threshold=args.threshold,
                             accuracy_threshold=args.accuracy_threshold, allow_contended=args.allow_contended,
                             allow_different=args.allow_different_recipes)
    print(for_terminal(result.render()))
    return result.exit_code


def cmd_export_csv(args) -> int:
    from mnist_bench.bench.results import export

    validate.run_dirs_with_records(args.run_dirs)
    validate.writable_file(args.out, "--out")
    print(export.write_csv(args.run_dirs, args.out, warn=lambda message: print(for_terminal(f"warning: {message}"), file=sys.stderr)))
    return EXIT_OK


def cmd_parity(args) -> int:
    from mnist_bench.bench.checks import parity
    from mnist_bench.common.records import write_atomic

    if args.side_by_side and args.device != "cpu":
        raise UsageError(f"--side-by-side runs probes side by side on the CPUs; with --device {args.device} they "
                         "would share the device: leave --side-by-side out")
    args.seeds, args.first_seed, args.allow_known_broken = 1, 0, True
    configs = list(dict.fromkeys(parity.ProbeConfig(s.backend, s.mode, s.precision) for s in plan(args)))
    validate.writable_dir(args.out, "--out")
    validate.check_data(parity.parity_recipe(), args.data_dir)
    checks = parity.check(configs, args.data_dir, args.out / "parity-work", args.threads, args.device,
                          side_by_side=args.side_by_side)
    write_atomic(args.out / "parity.json", {"kind": "parity", "device": args.device, "checks": checks,
                                            "tolerances": {k: vars(t) for k, t in parity.TOLERANCES.items()},
                                            "oracle": parity.oracle.describe()})
    print(parity.oracle.error_table(checks))
    known = {c.label: why for c in configs for why in [registry.known_broken(c.backend, c.mode, args.device)] if why}
    failed = [c for c in checks if not c["passed"]]
    unexpected = [c for c in failed if c["a"] not in known and c["b"] not in known]
    for c in failed:
        print(("FAIL " if c in unexpected else "known-broken ") + parity.failure_message(c))
    print(f"{len(checks) - len(failed)} passed, {len(unexpected)} failed, {len(failed) - len(unexpected)} known-broken; "
          f"written to {args.out / 'parity.json'}")
    return EXIT_FAILED if unexpected else EXIT_OK


def cmd_backends(args) -> int:
    """Every implementation found through the entry points, where it comes from, what it offers."""
    width = max(map(len, registry.names()), default=0) + 2
    for name, spec in registry.specs().items():
        state = "installed" if registry.is_available(name) else registry.not_installed_message(name)
        parts = [part.replace("_", "-") for part in ("data_parallel", "plain_loop", "matmul_probe", "profiler")
                 if spec.offers(part)]
        origin = registry.distribution(name)
        fastest = registry.fastest_mode(name)
        print(f"{name:{width}s}{spec.description or '(no description)'}"
              + f"\n{'':{width}s}modes: {', '.join(spec.modes)} (default {spec.default_mode}"
              + (f", fastest {fastest}" if fastest != spec.default_mode else "")
              + f"); devices: {', '.join(spec.devices)}; {state}"
              + (f"\n{'':{width}s}also: {', '.join(parts)}" if parts else "")
              + ("" if origin == registry.THIS_DISTRIBUTION else f"\n{'':{width}s}from: {origin}")
              + ("\n" + f"{'':{width}s}the float64 oracle" if spec.oracle else ""))
    for problem in registry.problems():
        print(f"problem: {problem}")
    return EXIT_OK


COMMANDS = {"run": cmd_run, "report": cmd_report, "compare": cmd_compare, "export-csv": cmd_export_csv,
            "parity": cmd_parity, "backends": cmd_backends}


def main(argv: list[str] | None = None) -> int:
    from mnist_bench.common.records import RecordError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, validate.InputError, recipes.RecipeError, registry.UnknownBackend, RecordError) as exc:
        print(for_terminal(f"mnist-bench {args.command}: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
