"""Compare a new result set against a base one and flag regressions, for CI.

Runs are matched by (backend, mode, device, seed) where the two sides share
seeds for that group; otherwise the group's medians are compared. A match
regresses when new/base training samples/s falls below ``1 - threshold``, when
test accuracy drops by more than ``accuracy_threshold`` (absolute), or when a
run that finished in the base did not finish in the new set. A configuration that
finished ok in the base and is missing from the new set is a regression too, always:
a run that timed out before resolving ``--device auto`` records ``auto``, and must not
turn into an unmatched "only in new" and an OK verdict.

A speed taken on a busy machine says nothing about the code: where either side of
a match was contended (its record says other processes used more than the
threshold of its CPUs), samples/s is not judged unless ``allow_contended`` is
given, and the verdict is INCONCLUSIVE (exit 3) rather than OK. Accuracy is still
judged: contention slows training, it does not change what is computed.

Two result sets trained on different recipes, threads or versions (of mnist-bench or of a
framework) are not compared: the verdict is REFUSED (exit 2), listing what differs
(:mod:`mnist_bench.bench.results.provenance`), unless ``allow_different`` says the difference
is what is being measured. A record with a NaN or infinite figure is invalid, and
:func:`compare` raises on it, naming the file and the field.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from mnist_bench.bench.results import contended as load
from mnist_bench.bench.results import provenance
from mnist_bench.bench.results.grouping import GroupKey, group_runs
from mnist_bench.common.records import read_dirs

# Comparisons at exactly the threshold must not flip on float rounding.
_SLACK = 1e-12
EXIT_OK, EXIT_REGRESSED, EXIT_REFUSED, EXIT_INCONCLUSIVE = 0, 1, 2, 3


@dataclass(frozen=True)
class Side:
    """One side of a match: the runs' statuses and their median numbers."""

    statuses: tuple[str, ...]
    samples_per_s: float | None
    accuracy: float | None
    busiest: float | None = None  # the largest share of its CPUs other processes used, over contended runs

    @property
    def finished(self) -> bool:
        return "ok" in self.statuses


@dataclass(frozen=True)
class Match:
    """A base/new pair: one seed of a group, or (``seed`` None) the whole group's medians."""

    group: GroupKey
    seed: int | None
    base: Side
    new: Side
    problems: tuple[str, ...]
    unjudged: tuple[str, ...] = ()  # why samples/s was not judged

    @property
    def label(self) -> str:
        where = "/".join(self.group)
        return f"{where} seed {self.seed}" if self.seed is not None else f"{where} (group median)"

    @property
    def ratio(self) -> float | None:
        """New over base training samples/s; None when either side did not measure it."""
        if self.base.samples_per_s and self.new.samples_per_s is not None:
            return self.new.samples_per_s / self.base.samples_per_s
        return None

    @property
    def accuracy_difference(self) -> float | None:
        """New minus base final test accuracy (a fraction)."""
        if self.base.accuracy is None or self.new.accuracy is None:
            return None
        return self.new.accuracy - self.base.accuracy

    @property
    def regressed(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`: matches, what could not be matched, and the verdict."""

    matches: list[Match]
    unmatched_base: list[str]
    unmatched_new: list[str]
    threshold: float
    accuracy_threshold: float
    base_runs: int = 0
    new_runs: int = 0
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # finished ok in base, absent from new: always a regression
    differences: list[str] = field(default_factory=list)  # recipe, threads, versions that differ between the sides
    allow_different: bool = False

    @property
    def refused(self) -> bool:
        """The two sides were not measured the same way and nobody said that was the point."""
        return bool(self.differences) and not self.allow_different

    @property
    def regressed(self) -> bool:
        return bool(self.missing) or any(match.regressed for match in self.matches)

    @property
    def inconclusive(self) -> list[Match]:
        return [match for match in self.matches if match.unjudged]

    @property
    def exit_code(self) -> int:
        """2 when refused (different recipes or versions); else 1 when anything regressed, else 3 when a speed
        could not be judged (contended runs), else 0."""
        if self.refused:
            return EXIT_REFUSED
        if self.regressed:
            return EXIT_REGRESSED
        return EXIT_INCONCLUSIVE if self.inconclusive else EXIT_OK

    @property
    def reasons(self) -> list[str]:
        """One line per regression, naming the backend/mode/device (and seed)."""
        return ([f"{match.label}: {problem}" for match in self.matches for problem in match.problems]
                + [f"{item}: finished ok in base, missing from new (it never ran, or its record names another "
                   "configuration)" for item in self.missing])

    def render(self) -> str:
        """A plain-text table of every match, then regressions, unmatched runs and the verdict."""
        if self.refused:
            return "\n".join([
                f"compare: base {self.base_runs} runs, new {self.new_runs} runs were not measured the same way:",
                *(f"  - {line}" for line in self.differences), "",
                "REFUSED: a difference between these result sets could come from any of the above, not from the "
                "code; compare runs of one recipe and one set of versions, or pass --allow-different-recipes when "
                "the difference is what you are measuring (e.g. two releases of a framework)"])
        headers = ("match", "base samples/s", "new samples/s", "ratio", "base acc", "new acc", "Δacc", "verdict")
        table = [headers] + [
            (
                match.label,
                _rate(match.base.samples_per_s) if match.base.finished else _status(match.base),
                _rate(match.new.samples_per_s) if match.new.finished else _status(match.new),
                f"{match.ratio:.3f}x" if match.ratio is not None else "-",
                _percent(match.base.accuracy),
                _percent(match.new.accuracy),
                f"{match.accuracy_difference * 100:+.2f} pp" if match.accuracy_difference is not None else "-",
                "REGRESSED" if match.regressed else ("speed not judged" if match.unjudged else "ok"),
            )
            for match in self.matches
        ]
        widths = [max(len(row[column]) for row in table) for column in range(len(headers))]
        lines = [
            f"compare: base {self.base_runs} runs, new {self.new_runs} runs; regression = samples/s below "
            f"{1 - self.threshold:.2f}x base or test accuracy down more than {self.accuracy_threshold * 100:.2f} pp",
        ]
        lines += [
            "  ".join(cell.ljust(width) if column == 0 else cell.rjust(width) 
                      for column, (cell, width) in enumerate(zip(row, widths)))
            for row in table
        ]
        lines += self.notes
        if self.differences:
            lines += ["", "measured differently (allowed by --allow-different-recipes):"] + [
                f"  - {line}" for line in self.differences]
        if self.reasons:
            lines += ["", "regressions:"] + [f"  - {reason}" for reason in self.reasons]
        if self.inconclusive:
            lines += ["", "not judged (busy machine):"] + [
                f"  - {match.label}: {why}" for match in self.inconclusive for why in match.unjudged]
        for side, unmatched in (("base", self.unmatched_base), ("new", self.unmatched_new)):
            if unmatched:
                lines += ["", f"only in {side} (not compared):"] + [f"  - {item}" for item in unmatched]
        flagged = sum(match.regressed for match in self.matches)
        if self.regressed:
            verdict = f"REGRESSED: {flagged} of {len(self.matches)} matches" + (
                f", and {len(self.missing)} configuration(s) ok in base missing from new" if self.missing else "")
        elif self.inconclusive:
            verdict = (f"INCONCLUSIVE: {len(self.inconclusive)} of {len(self.matches)} matches rest on runs measured "
                       "on a busy machine, so their speed was not judged; re-run them on a quiet machine, or pass "
                       "--allow-contended to judge them anyway")
        else:
            verdict = f"OK: {len(self.matches)} matches, no regression"
        return "\n".join(lines + ["", verdict])


def _rate(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "-"


def _percent(value: float | None) -> str:
    return f"{value * 100:.2f}%" if value is not None else "-"


def _status(side: Side) -> str:
    return "/".join(sorted(set(side.statuses))) or "-"


def _side(runs: list[dict]) -> Side:
    finished = [run for run in runs if run["status"] == "ok"]
    rates = [run["timing"].get("steady_samples_per_s") for run in finished]
    accuracies = [((run.get("final") or {}).get("test") or {}).get("accuracy") for run in finished]
    rates = [value for value in rates if value is not None]
    accuracies = [value for value in accuracies if value is not None]
    busy = [load.other_share(run) or 0.0 for run in load.contended(finished)]
    return Side(
        tuple(run["status"] for run in runs),
        statistics.median(rates) if rates else None,
        statistics.median(accuracies) if accuracies else None,
        max(busy) if busy else None,
    )


def _unjudged(base: Side, new: Side, allow_contended: bool) -> tuple[str, ...]:
    if allow_contended or not (base.finished and new.finished):
        return ()
    return tuple(f"{name} run(s) measured on a busy machine (other processes used {side.busiest:.0%} of their CPUs)"
                 for name, side in (("base", base), ("new", new)) if side.busiest is not None)


def _problems(base: Side, new: Side, threshold: float, accuracy_threshold: float,
              judge_speed: bool = True) -> tuple[str, ...]:
    if not base.finished:
        return ()  # nothing to regress from
    if not new.finished:
        return (f"base finished ok but new run(s) ended {_status(new)}",)
    problems = []
    if judge_speed and base.samples_per_s and new.samples_per_s is not None:
        ratio = new.samples_per_s / base.samples_per_s
        if ratio < 1 - threshold - _SLACK:
            problems.append(
                f"training samples/s {new.samples_per_s:,.0f} vs base {base.samples_per_s:,.0f} "
                f"= {ratio:.3f}x, below {1 - threshold:.2f}x"
            )
    if base.accuracy is not None and new.accuracy is not None:
        drop = base.accuracy - new.accuracy
        if drop > accuracy_threshold + _SLACK:
            problems.append(
                f"test accuracy {new.accuracy * 100:.2f}% vs base {base.accuracy * 100:.2f}% "
                f"fell {drop * 100:.2f} pp, more than {accuracy_threshold * 100:.2f} pp"
            )
    return tuple(problems)


def compare_records(
    base: list[dict], new: list[dict], *, threshold: float = 0.10, accuracy_threshold: float = 0.005,
    allow_contended: bool = False, allow_different: bool = False,
) -> Comparison:
    """:func:`compare` on records already loaded."""
    base_groups, new_groups = group_runs(base), group_runs(new)
    matches: list[Match] = []
    unmatched_base: list[str] = []
    unmatched_new: list[str] = []
    missing: list[str] = []

    def absent_from_new(item: str, base_runs: list[dict]) -> None:
        (missing if any(run["status"] == "ok" for run in base_runs) else unmatched_base).append(item)

    def add(group: GroupKey, seed: int | None, base_runs: list[dict], new_runs: list[dict]) -> None:
        base_side, new_side = _side(base_runs), _side(new_runs)
        unjudged = _unjudged(base_side, new_side, allow_contended)
        problems = _problems(base_side, new_side, threshold, accuracy_threshold, judge_speed=not unjudged)
        matches.append(Match(group, seed, base_side, new_side, problems, unjudged))

    for group in sorted(base_groups.keys() | new_groups.keys()):
        name = "/".join(group)
        if group not in new_groups:
            absent_from_new(f"{name} ({len(base_groups[group])} runs)", base_groups[group])
            continue
        if group not in base_groups:
            unmatched_new.append(f"{name} ({len(new_groups[group])} runs)")
            continue
        base_seeds = {run["seed"] for run in base_groups[group]}
        new_seeds = {run["seed"] for run in new_groups[group]}
        if not base_seeds & new_seeds:
            add(group, None, base_groups[group], new_groups[group])
            continue
        for seed in sorted(base_seeds | new_seeds):
            if seed not in new_seeds:
                absent_from_new(f"{name} seed {seed}", [run for run in base_groups[group] if run["seed"] == seed])
            elif seed not in base_seeds:
                unmatched_new.append(f"{name} seed {seed}")
            else:
                add(
                    group,
                    seed,
                    [run for run in base_groups[group] if run["seed"] == seed],
                    [run for run in new_groups[group] if run["seed"] == seed],
                )
    notes = []
    if any(match.seed is None for match in matches):
        notes.append("(group median: the two sides share no seed for that group, so their medians were compared)")
    return Comparison(matches, unmatched_base, unmatched_new, threshold, accuracy_threshold, len(base), len(new), notes,
                      missing, provenance.differences(base, new), allow_different)


def compare(
    base_dirs: Iterable[str | Path],
    new_dirs: Iterable[str | Path],
    *,
    threshold: float = 0.10,
    accuracy_threshold: float = 0.005,
    allow_contended: bool = False,
    allow_different: bool = False,
    strict: bool = True,
    warn: Callable[[str], None] | None = print,
) -> Comparison:
    """Compare the runs under ``new_dirs`` against those under ``base_dirs``.

    ``threshold`` is the tolerated fractional slowdown in training samples/s
    (0.10: new may be down to 0.90x base); ``accuracy_threshold`` the tolerated
    absolute drop in final test accuracy (0.005: half a percentage point).
    ``allow_different`` judges the two sides even when their recipes, threads or
    versions differ (else the comparison is refused, exit code 2).
    A bad record file raises with ``strict`` (the default, since a silently
    skipped run could hide a regression), else it is skipped via ``warn``.
    """
    base = read_dirs(base_dirs, strict=strict, warn=warn)
    new = read_dirs(new_dirs, strict=strict, warn=warn)
    return compare_records(base, new, threshold=threshold, accuracy_threshold=accuracy_threshold,
                           allow_contended=allow_contended, allow_different=allow_different)
