"""Numerical parity: the same weights and batches must give the same numbers in every backend.

Each backend and mode is probed in its own process (``python -m mnist_bench.bench.checks.parity``),
from one shared set of inputs, and the results are compared here, pairwise:

* ``forward_logits``: logits for 256 test images from the canonical initial weights.
* ``loss`` and ``gradients``: one training batch, dropout off, no update.
* ``trajectory_loss``: the loss at **every** one of 60 SGD steps, dropout off.
* ``trajectory_weights``: the weights after those 60 steps.
* ``roundtrip_accuracy``: a backend's trained weights loaded into another give the same test
  accuracy on the 10,000 test images: every implementation's into the hub's and the hub's into
  every other (:func:`roundtrip_pairs`).
* ``export_identity``: load then export returns the weights bit for bit.

Tolerances were measured on this project's CPU machines (2 cores, float32) and
are set a few times above the largest difference seen; the numbers and the
reasons stand next to each tolerance in :data:`TOLERANCES`.

Which pairs: each mode against its own implementation's default, and the defaults against
each other (:func:`pairs_of`); and every probe against the float64 NumPy oracle, with the
``torch._dynamo`` rule of :mod:`mnist_bench.bench.checks.oracle`, which also says whose rounding drifts.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_bench.bench.checks import oracle
from mnist_bench.bench.checks.probe import COMPARED, difference, first_batches, initial_weights, parity_recipe
from mnist_bench.common import precision as numeric
from mnist_bench.common import registry

TRAJECTORY_STEPS = 60
FORWARD_IMAGES = 256
# One process probes every mode of a backend; on the 2-core CPU machines the slowest (all of
# TensorFlow's modes) takes about two minutes, so this only stops a hung probe.
PROBE_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Tolerance:
    value: float
    measured: float
    why: str


# Re-measured 2026-12-01 with `mnist-bench parity --modes all --device cpu` (every built-in mode and the
# NumPy oracle in float32 and float64; torch-compiled left out, it is known broken): the largest pairwise
# difference is in `measured`. Each tolerance stays a few times above it.
TOLERANCES: dict[str, Tolerance] = {
    # Pure float32 forward pass, same weights: only summation order differs.
    "forward_logits": Tolerance(1e-5, 6.7e-8, "max |logit difference|; float32 summation order only"),
    "loss": Tolerance(1e-5, 2.5e-7, "|loss difference| on one batch"),
    # Per tensor, relative to that tensor's largest gradient entry.
    "gradients": Tolerance(1e-4, 4.3e-6, "max |grad difference| / max |grad|, per tensor; float32 reductions"),
    # At step 37 a max-pool/ReLU near-tie is decided one way by PyTorch eager, JAX tuned and float64,
    # the other by TensorFlow, JAX eager/compiled and float32 NumPy: those jump 2.4e-4 apart at once.
    # Not one framework being wrong (bench/checks/oracle.py shows each side's distance from float64),
    # so the bound covers the flip, not a drift.
    "trajectory_loss": Tolerance(5e-4, 2.4e-4, "max |loss difference| over all 60 steps"),
    "trajectory_weights": Tolerance(1e-3, 8.6e-5, "max |weight difference| after 60 steps"),
    # Trained weights moved between backends: argmax may flip on a borderline image.
    "roundtrip_accuracy": Tolerance(3e-4, 0.0, "|test accuracy difference| (3 of 10,000 images)"),
    "export_identity": Tolerance(0.0, 0.0, "load then export is exact: layouts are permutations"),
}


@dataclass(frozen=True)
class ProbeConfig:
    backend: str
    mode: str
    precision: str = numeric.DEFAULT

    @property
    def label(self) -> str:
        return f"{self.backend}-{self.mode}" + ("" if self.precision == numeric.DEFAULT else f"-{self.precision}")

    @property
    def token(self) -> str:
        """How the probe process is told this config: ``mode`` or ``mode@precision``."""
        return self.mode if self.precision == numeric.DEFAULT else f"{self.mode}@{self.precision}"


def make_inputs(data_dir: str | None, path: Path, seed: int = 0) -> Path:
    """The shared inputs every probe reads: weights, batches and the test set."""
    recipe = parity_recipe()
    arrays, xs, ys = first_batches(data_dir, recipe, TRAJECTORY_STEPS, seed)
    np.savez(path, forward_x=arrays.test_x[:FORWARD_IMAGES], traj_x=xs, traj_y=ys,
             test_x=arrays.test_x, test_y=arrays.test_y, **initial_weights(recipe, seed))
    return path


def _weights(npz, prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: npz[k] for k in npz.files if k.startswith(prefix)}


def probe(config: ProbeConfig, inputs: Path, out: Path, device: str = "cpu", mover: bool = True) -> None:
    """Phase 1, inside the backend's process: forward, gradients, trajectory (and test predictions for a mover)."""
    from mnist_bench.common.registry import load_backend

    backend = load_backend(config.backend)(parity_recipe(), device=device, mode=config.mode, seed=0,
                                           precision=config.precision)
    probe_backend(backend, inputs, out, mover)


def probe_backend(backend, inputs: Path, out: Path, mover: bool = True) -> None:
    """:func:`probe` on a backend already built (with the parity recipe): what a test plants a fault in."""
    data = np.load(inputs, allow_pickle=False)
    init = _weights(data, "w/")
    backend.load_weights(init)
    exported = backend.export_weights()
    identity = max(float(np.max(np.abs(exported[k] - init[k]))) for k in init)
    logits = backend.logits(data["forward_x"])
    loss, grads = backend.loss_and_grads(data["traj_x"][0], data["traj_y"][0])
    losses = backend.train_chunk(data["traj_x"], data["traj_y"])
    final = backend.export_weights()
    # Only movers' predictions are read (:func:`movers_of`); the rest would cost a 10,000-image
    # evaluation per mode (and more than the whole probe for the float64 oracle).
    predictions = backend.predict(data["test_x"]) if mover else np.zeros(0, np.int64)
    np.savez(out, logits=logits, loss=np.float64(loss), losses=losses, predictions=predictions,
             export_identity=np.float64(identity), precision=np.str_(backend.precision.name),
             **{f"g/{k}": v for k, v in grads.items()}, **{f"final/{k}": v for k, v in final.items()})


def evaluate_weights(config: ProbeConfig, inputs: Path, weight_files: list[Path], out: Path, device: str = "cpu") -> None:
    """Phase 2: load other backends' trained weights, predict the test set."""
    from mnist_bench.common.registry import load_backend

    data = np.load(inputs, allow_pickle=False)
    backend = load_backend(config.backend)(parity_recipe(), device=device, mode=config.mode, seed=0)
    results = {}
    for path in weight_files:
        backend.load_weights(_weights(np.load(path, allow_pickle=False), "final/"))
        results[path.name.removesuffix(".npz")] = backend.predict(data["test_x"])
    np.savez(out, **results)


def _run_all(tasks: list[tuple[list[str], str]], threads: int, side_by_side: bool) -> None:
    """Each (arguments, device) in its own probe process: one after another, or side by side on one CPU each."""
    if not side_by_side:
        for args, device in tasks:
            _run_in_process(args, threads, device)
        return
    import queue
    from concurrent.futures import ThreadPoolExecutor

    cpus: queue.Queue[int] = queue.Queue()
    for cpu in sorted(os.sched_getaffinity(0)):
        cpus.put(cpu)

    def on_a_free_cpu(task: tuple[list[str], str]) -> None:
        cpu = cpus.get()
        try:
            _run_in_process([*task[0], "--cpu", str(cpu)], 1, task[1])
        finally:
            cpus.put(cpu)

    with ThreadPoolExecutor(max_workers=cpus.qsize()) as pool:
        for future in [pool.submit(on_a_free_cpu, task) for task in tasks]:
            future.result()  # the first failure, as one after another would raise it


def _run_in_process(args: list[str], threads: int, device: str) -> None:
    from mnist_bench.bench.run import process

    argv = process.python("-m", "mnist_bench.bench.checks.parity", *args, "--threads", str(threads), "--device", device)
    try:
        proc = process.run(argv, PROBE_TIMEOUT_S)
    except process.ChildTimeout as exc:
        raise RuntimeError(f"parity probe {' '.join(args[:2])} gave no result within {PROBE_TIMEOUT_S} s:\n"
                           f"{exc.output[-4000:]}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"parity probe {' '.join(args[:2])} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def run_probes(configs: list[ProbeConfig], data_dir: str | None, work: Path, threads: int = 2,
               device: str = "cpu", side_by_side: bool = False) -> dict[str, dict]:
    """Run both phases, one process per backend; return each config's arrays by label.

    Phase 1 probes every config. Phase 2 (weights moved between backends) uses
    each backend's default mode: modes share the model, only execution differs.
    ``side_by_side``: as many processes at once as this process may use CPUs, each pinned to one CPU
    with one thread (``threads`` is then ignored): for CPUs only (GPU probes would share the device).
    The tests and the pytest plug-in run them so: two single-thread processes on a 2-core machine
    finish in well under twice the time of one two-thread process, and every check passes alike.
    """
    if side_by_side and device != "cpu":
        raise ValueError("side_by_side probes share the machine's CPUs: for device 'cpu' only")
    work.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(data_dir, work / "inputs.npz")
    by_backend: dict[str, list[ProbeConfig]] = {}
    for c in configs:
        by_backend.setdefault(c.backend, []).append(c)
    # The oracle is NumPy on the host whatever device the others are probed on.
    _run_all([(["probe", backend, ",".join(c.token for c in group), str(inputs), str(work)],
               "cpu" if registry.spec(backend).oracle else device) for backend, group in by_backend.items()],
             threads, side_by_side)

    movers = movers_of(configs)
    pairs = roundtrip_pairs([m.label for m in movers])
    _run_all([(["evaluate", c.backend, c.mode, str(inputs), str(work),
                *(str(work / f"{exporter}.npz") for exporter, loader in pairs if loader == c.label)], device)
              for c in movers if any(loader == c.label for _, loader in pairs)], threads, side_by_side)
    out = {}
    for c in configs:
        with np.load(work / f"{c.label}.npz") as a:
            out[c.label] = {k: a[k] for k in a.files}
        if c in movers:
            with np.load(work / f"{c.label}.eval.npz") as b:
                out[c.label].update({f"eval/{k}": b[k] for k in b.files})
    out["_inputs"] = dict(np.load(inputs))
    return out


def with_oracle(configs: list[ProbeConfig]) -> list[ProbeConfig]:
    """``configs`` plus the float64 oracle and the reference in each precision probed (bench/checks/oracle.py),
    once each."""
    precisions = dict.fromkeys([numeric.DEFAULT, *(c.precision for c in configs)])
    extra = [ProbeConfig(oracle.ORACLE_BACKEND, "float64"),
             *(ProbeConfig(oracle.ORACLE_BACKEND, "float32", p) for p in precisions)]
    return list(dict.fromkeys([*configs, *extra]))


def _defaults(configs: list[ProbeConfig]) -> dict[str, ProbeConfig]:
    """Each implementation's fp32 probe in its default mode (or its first probed fp32 mode).

    Below fp32 a probe is measured against the float64 oracle only: two bf16 runs agree no better than
    bf16 allows, which the oracle's rule already bounds, so they are neither paired nor moved.
    """
    by_backend: dict[str, list[ProbeConfig]] = {}
    for c in configs:
        if c.precision == numeric.DEFAULT:
            by_backend.setdefault(c.backend, []).append(c)
    return {b: next((c for c in group if c.mode == registry.default_mode(b)), group[0])
            for b, group in by_backend.items()}


def movers_of(configs: list[ProbeConfig]) -> list[ProbeConfig]:
    """Whose trained weights are moved between implementations (:func:`roundtrip_pairs`): each one's default mode."""
    return [c for b, c in _defaults(configs).items() if not registry.spec(b).oracle]


def roundtrip_pairs(movers: list[str]) -> list[tuple[str, str]]:
    """(exporter, loader): every mover's trained weights into the hub (the first mover), the hub's into every other.

    A star, not every pair: each implementation's export is read by the hub and its loading is fed
    the hub's export, so a wrong export or load in any implementation still fails a check, with
    2(n - 1) evaluations of the test set instead of n(n - 1). The forward check from the shared
    initial weights and the trained-weights check against the oracle test every load and export too.
    """
    if not movers:  # only the oracle was asked for: nothing trained is moved
        return []
    hub, *others = movers
    return [pair for label in others for pair in ((label, hub), (hub, label))]


def pairs_of(configs: list[ProbeConfig]) -> list[tuple[str, str]]:
    """The pairwise checks that, with every probe against the float64 oracle, replace all pairs.

    Each mode against its own implementation's default mode (a mode may change execution, never
    the mathematics), and the implementations' defaults against each other (the cross-framework
    figures users read). Two modes of different frameworks are then related through both their
    defaults and, independently, through the oracle, so dropping their direct pair loses no failure
    the others would not show.
    """
    defaults = _defaults(configs)
    pairs = [(defaults[c.backend].label, c.label) for c in configs
             if c.precision == numeric.DEFAULT and c != defaults[c.backend]]
    cross = [c.label for b, c in defaults.items() if not registry.spec(b).oracle]
    return pairs + list(itertools.combinations(cross, 2))


def differences(results: dict[str, dict], pairs: list[tuple[str, str]] | None = None) -> list[dict]:
    """Every check for every given pair of probes (default: all pairs), with its difference and tolerance.

    With the float64 oracle among the results, every probe is also checked against it
    (:func:`mnist_bench.bench.checks.oracle.against_oracle`).
    """
    test_y = results["_inputs"]["test_y"]
    labels = [k for k in results if not k.startswith("_")]
    pairs = list(itertools.combinations(labels, 2)) if pairs is None else pairs
    checks = []

    def add(a: str, b: str, name: str, diff: float) -> None:
        tol = TOLERANCES[name].value
        checks.append({"a": a, "b": b, "check": name, "max_abs_diff": diff, "tolerance": tol, "passed": diff <= tol})

    for label in labels:
        add(label, label, "export_identity", float(results[label]["export_identity"]))
    for a, b in pairs:
        ra, rb = results[a], results[b]
        for name in COMPARED:
            add(a, b, name, difference(ra, rb, name))
    for exporter, loader in itertools.permutations(labels, 2):
        if f"eval/{exporter}" not in results[loader]:
            continue
        own = float(np.mean(results[exporter]["predictions"] == test_y))
        moved = float(np.mean(results[loader][f"eval/{exporter}"] == test_y))
        add(exporter, loader, "roundtrip_accuracy", abs(own - moved))
    if oracle.ORACLE in results:
        checks += oracle.against_oracle(results)
    return checks


def check(configs: list[ProbeConfig], data_dir: str | None, work: Path, threads: int = 2,
          device: str = "cpu", side_by_side: bool = False) -> list[dict]:
    """The whole parity check for ``configs`` (the oracle added): probe, then :func:`differences` on :func:`pairs_of`."""
    configs = with_oracle(configs)
    return differences(run_probes(configs, data_dir, work, threads, device, side_by_side), pairs_of(configs))


def failure_message(check: dict) -> str:
    """One failed check, as the tests and the pytest plug-in report it: what, who, how far, and why the bound."""
    name = check["check"]
    base = name.removesuffix("_vs_float64")
    precision = check.get("precision", numeric.DEFAULT)
    reference = "float32" if precision == numeric.DEFAULT else oracle.reference(precision)
    if name == "precision_applied":
        return (f"precision_applied {check['a']}: asked for {precision}, its logits are {check['max_abs_diff']:.3e} "
                f"from float64, under {check['tolerance']:.3e} = {oracle.APPLIED_FRACTION:g} x the {reference} "
                f"reference's {check['reference']:.3e}: it did not compute in {precision}")
    if name != base:
        rule = oracle.rule(precision)
        floor = rule.floors[base]
        return (f"{name} {check['a']}: error against float64 {check['max_abs_diff']:.3e} exceeds "
                f"{check['tolerance']:.3e} = {rule.multiple:g} x the {reference} reference's error "
                f"{check['reference']:.3e} + floor {floor.value:.1e} ({floor.why})")
    tol = TOLERANCES[name]
    return (f"{name} {check['a']} vs {check['b']}: difference {check['max_abs_diff']:.3e} "
            f"exceeds {check['tolerance']:.1e} ({tol.why}; measured at most {tol.measured:.1e} when set)")


def main(argv: list[str] | None = None) -> int:
    from mnist_bench.bench import options

    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.checks.parity")
    parser.add_argument("phase", choices=("probe", "evaluate"))
    parser.add_argument("backend")
    parser.add_argument("modes", help="comma-separated, each mode or mode@precision (probe); one mode (evaluate)")
    parser.add_argument("inputs", type=Path)
    parser.add_argument("work", type=Path, help="folder for the outputs")
    parser.add_argument("weights", nargs="*", type=Path)
    options.add_threads(parser, default=2)
    options.add_device(parser, "cpu", auto=False)
    parser.add_argument("--cpu", type=int, help="run on this CPU only (with --threads 1: side by side with others)")
    args = parser.parse_args(argv)
    from mnist_bench.bench.run.process_setup import configure_process

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # configure_process then pins to the first --threads CPUs of this one
    configure_process(args.threads, args.device, args.backend)  # its spec's env (KERAS_BACKEND) before any import
    if args.phase == "probe":
        configs = [ProbeConfig(args.backend, *token.split("@")) for token in args.modes.split(",")]
        movers = movers_of(configs)
        for config in configs:
            probe(config, args.inputs, args.work / f"{config.label}.npz", args.device, mover=config in movers)
    else:
        config = ProbeConfig(args.backend, args.modes)
        evaluate_weights(config, args.inputs, args.weights, args.work / f"{config.label}.eval.npz", args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
