"""Prove that an implementation is the same model: mnist-bench's own parity checks, as a library.

::

    from mnist_bench import parity

    parity.numerical("mine", against=["torch"]).assert_passed()
    parity.accuracy("mine", against="torch", seeds=2).assert_passed()

``numerical`` probes each implementation in its own process from the same canonical weights and
batches: forward logits, loss and gradients, the loss at every one of 60 SGD steps, the weights
after them, load/export identity, and trained weights moved both ways; each judged pairwise and
against the float64 NumPy oracle, with the tolerances and failure messages mnist-bench's own
tests use (``bench/checks/parity.py``, ``bench/checks/oracle.py``). ``accuracy`` trains through
the real harness over seeds: every run over the floor, the mean accuracy gap inside the margin. The pytest plug-in (:mod:`mnist_bench.pytest_plugin`) wraps both as a fixture.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["ParityResult", "AccuracyResult", "numerical", "accuracy", "accuracy_problems", "MARGIN", "FLOOR"]

# Accuracy parity, as tests/test_accuracy_parity.py sets them for one epoch of the default recipe:
MARGIN = 0.015  # the largest accuracy gap two implementations of one model may have
FLOOR = 0.94  # one epoch reaches at least this on the 10,000 test images


@dataclass
class ParityResult:
    """Every numerical check made, each a dict: check, a, b, max_abs_diff, tolerance, passed."""

    checks: list[dict]
    labels: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[dict]:
        return [c for c in self.checks if not c["passed"]]

    def messages(self) -> list[str]:
        from mnist_bench.bench.checks.parity import failure_message

        return [failure_message(c) for c in self.failures]

    def assert_passed(self) -> None:
        """Raise AssertionError listing every failed check, with its figures and why its bound is what it is."""
        if self.failures:
            raise AssertionError(f"{len(self.failures)} of {len(self.checks)} parity checks failed:\n"
                                 + "\n".join(self.messages()))

    def error_table(self) -> str:
        from mnist_bench.bench.checks import oracle

        return oracle.error_table(self.checks)


def _labels(name: str, modes: Sequence[str] | None, precisions: Sequence[str] = ("fp32",)):
    from mnist_bench.bench.checks.parity import ProbeConfig
    from mnist_bench.common import registry

    chosen = registry.modes(name) if modes is None else tuple(modes)
    return [ProbeConfig(name, mode, precision) for mode in chosen for precision in precisions]


def numerical(candidate: str, against: Sequence[str] = ("torch",), *, modes: Sequence[str] | None = None,
              data_dir: str | None = None, work: str | Path | None = None, threads: int = 2,
              device: str = "cpu", precisions: Sequence[str] = ("fp32",)) -> ParityResult:
    """Numerical parity of ``candidate`` (every mode, or ``modes``) with ``against`` (their default modes) and float64.

    ``data_dir``: the MNIST IDX files (default: ``MNIST_BENCH_DATA``, then the download cache). On the
    CPU the probes run side by side, one single-thread process per CPU (``threads`` is then not used).
    ``precisions``: below fp32 (e.g. ``("fp32", "bf16")``) the candidate is also judged against float64
    in each, as close as that precision allows (README, "Parity"); ``against`` is compared in fp32.
    """
    from mnist_bench.bench.checks import parity
    from mnist_bench.common import registry

    candidate, against = registry.canonical(candidate), [registry.canonical(name) for name in against]  # former names
    for name in (candidate, *against):
        if not registry.is_available(name):
            raise registry.BackendNotInstalled(registry.not_installed_message(name))
    configs = _labels(candidate, modes, precisions)
    configs += [parity.ProbeConfig(b, registry.default_mode(b)) for b in against]
    configs = list(dict.fromkeys(configs))
    with tempfile.TemporaryDirectory(prefix="mnist-parity-") as tmp:
        checks = parity.check(configs, data_dir, Path(work or tmp), threads, device, side_by_side=device == "cpu")
    return ParityResult(checks, [c.label for c in parity.with_oracle(configs)])


@dataclass
class AccuracyResult:
    """Final test accuracies by implementation, one per seed, and what failed."""

    accuracies: dict[str, list[float]]
    margin: float
    floor: float
    problems: list[str]

    def assert_passed(self) -> None:
        if self.problems:
            raise AssertionError("accuracy parity failed:\n" + "\n".join(self.problems))


def accuracy_problems(accuracies: dict[str, list[float]], floor: float = FLOOR, margin: float = MARGIN) -> list[str]:
    """The rule tests/test_accuracy_parity.py applies: every run over the floor, every pair's mean gap in the margin."""
    import itertools

    problems = [f"{name}: test accuracy {value:.4f} is under the floor {floor}"
                for name, values in accuracies.items() for value in values if value < floor]
    means = {name: sum(values) / len(values) for name, values in accuracies.items() if values}
    for a, b in itertools.combinations(means, 2):
        if abs(means[a] - means[b]) > margin:
            problems.append(f"{a} {means[a]:.4f} vs {b} {means[b]:.4f}: gap over {margin} "
                            f"(means over {len(accuracies[a])} and {len(accuracies[b])} seeds)")
    return problems


def accuracy(candidate: str, against: str = "torch", *, seeds: int = 2, epochs: int = 1, margin: float = MARGIN,
             floor: float = FLOOR, data_dir: str | None = None, work: str | Path | None = None,
             settings: Sequence[str] = ()) -> AccuracyResult:
    """Train both through the harness (default modes) for ``seeds`` seeds from shared initial weights.

    ``settings``: recipe overrides as ``mnist-bench run --set`` takes them (``"train_limit=6400"``);
    a shortened recipe needs a ``floor`` to match.
    """
    from mnist_bench.bench import cli
    from mnist_bench.common import records, registry

    candidate, against = registry.canonical(candidate), registry.canonical(against)  # records use current names
    with tempfile.TemporaryDirectory(prefix="mnist-accuracy-") as tmp:
        out = Path(work or tmp) / "runs"
        argv = ["run", "--backends", f"{candidate},{against}", "--modes", "default", "--device", "cpu",
                "--epochs", str(epochs), "--seeds", str(seeds), "--out", str(out), "--quiet", "--no-peak-probe",
                "--no-require-quiet", *(["--data-dir", str(data_dir)] if data_dir else []),
                *[part for s in settings for part in ("--set", s)]]
        code = cli.main(argv)
        runs = [records.read(p) for p in records.record_paths(out)]
    accuracies = {name: [r["final"]["test"]["accuracy"] for r in runs if r["backend"] == name and r["status"] == "ok"]
                  for name in (candidate, against)}
    problems = [f"{name}: {seeds - len(values)} of {seeds} runs did not finish (mnist-bench run exit {code}; "
                f"errors: {[r.get('error') for r in runs if r['backend'] == name and r['status'] != 'ok']})"
                for name, values in accuracies.items() if len(values) < seeds]
    return AccuracyResult(accuracies, margin, floor, problems + accuracy_problems(accuracies, floor, margin))
