"""Per-group numbers the report states: accuracy parity, throughput, speed ratios, scaling, peak.

Intervals come from :mod:`mnist_bench.bench.results.stats` (scipy); nothing here
computes a distribution itself. Accuracy parity is a statement about the mean over
seeds (Welch's t interval) against an equivalence margin.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import Iterable

from mnist_bench.bench.results.grouping import GroupKey, finished
from mnist_bench.common.records import device_group
from mnist_bench.bench.results.stats import (
    RatioInterval, WelchInterval, independent_ratio, paired_ratio, welch_interval,
)

DEFAULT_MARGIN = 0.005  # half a percentage point of test accuracy


def final_accuracies(runs: Iterable[dict]) -> list[float]:
    return [run["final"]["test"]["accuracy"] for run in finished(runs) if (run.get("final") or {}).get("test")]


def recorded_values(runs: Iterable[dict], block: str, name: str) -> list[float]:
    """Non-null ``run[block][name]`` of the finished runs."""
    found = ((run.get(block) or {}).get(name) for run in finished(runs))
    return [value for value in found if value is not None]


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------
# Accuracy parity.


def parity_verdict(interval: WelchInterval | None, margin: float = DEFAULT_MARGIN) -> str:
    """``agree`` when the whole interval lies within ±margin; ``differ`` when it lies wholly outside."""
    if interval is None:
        return "inconclusive (n too small)"
    if -margin <= interval.low and interval.high <= margin:
        return "agree"
    if interval.low > margin or interval.high < -margin:
        return "differ"
    return "inconclusive (CI crosses the margin)"


@dataclass(frozen=True)
class AccuracyParity:
    """Verdict on final test accuracy for one pair of (backend, mode, device) groups."""

    a: GroupKey
    b: GroupKey
    accuracies_a: tuple[float, ...]
    accuracies_b: tuple[float, ...]
    interval: WelchInterval | None
    margin: float
    verdict: str


def accuracy_parity(groups: dict[GroupKey, list[dict]], margin: float = DEFAULT_MARGIN) -> list[AccuracyParity]:
    """Every pair of groups that has at least one finished run, compared on final test accuracy."""
    accuracies = {key: tuple(final_accuracies(runs)) for key, runs in sorted(groups.items())}
    measured = [key for key, values in accuracies.items() if values]
    result = []
    for a, b in itertools.combinations(measured, 2):
        interval = welch_interval(accuracies[a], accuracies[b])
        verdict = parity_verdict(interval, margin)
        result.append(AccuracyParity(a, b, accuracies[a], accuracies[b], interval, margin, verdict))
    return result


# --------------------------------------------------------------------------
# Speed.


@dataclass(frozen=True)
class Throughput:
    median: float
    low: float
    high: float
    spread: str  # how low..high was obtained, for the reader


def throughput(runs: Iterable[dict]) -> Throughput | None:
    """Median of the per-run steady-state medians, with min–max (or one run's IQR)."""
    measured = [run for run in finished(runs) if (run.get("timing") or {}).get("steady_samples_per_s") is not None]
    medians = [run["timing"]["steady_samples_per_s"] for run in measured]
    if not medians:
        return None
    median = statistics.median(medians)
    if len(medians) == 1:
        timing = measured[0]["timing"]
        q1, q3 = timing.get("steady_samples_per_s_q1"), timing.get("steady_samples_per_s_q3")
        if q1 is not None and q3 is not None:
            return Throughput(median, q1, q3, "IQR of 1 run")
        return Throughput(median, median, median, "1 run")
    return Throughput(median, min(medians), max(medians), f"range of {len(medians)} runs")


def speed_ratio(a: list[dict], b: list[dict]) -> RatioInterval:
    """Group a's speed over group b's. Seeds run in seed-major order, so the same seed of two groups ran
    in the same round: paired by seed where at least two seeds are shared, else independent runs."""
    rates = [{run["seed"]: run["timing"]["steady_samples_per_s"] for run in finished(runs)
              if (run.get("timing") or {}).get("steady_samples_per_s")} for runs in (a, b)]
    shared = sorted(rates[0].keys() & rates[1].keys())
    if len(shared) >= 2:
        return paired_ratio([rates[0][seed] for seed in shared], [rates[1][seed] for seed in shared])
    return independent_ratio(list(rates[0].values()), list(rates[1].values()))


def peak_gflops(run: dict) -> float | None:
    """The fp32 matmul peak the run is measured against (the record's optional ``peak`` block)."""
    return (run.get("peak") or {}).get("gflops")


@dataclass(frozen=True)
class Scaling:
    key: GroupKey  # the data-parallel group
    base: GroupKey  # the same backend, mode and device kind on one device
    devices: int
    hosts: int
    rate: float
    base_rate: float

    @property
    def efficiency(self) -> float:
        """samples/s on N devices over N times samples/s on one."""
        return self.rate / (self.devices * self.base_rate)


def scaling(groups: dict[GroupKey, list[dict]]) -> list[Scaling]:
    """Every data-parallel group whose backend/mode/device also has one-device runs, both with samples/s."""
    out = []
    for key, runs in groups.items():
        done = finished(runs)
        base = (key[0], key[1], device_group({**done[0], "devices": 1})) if done else None  # same precision
        if base is None or base == key or base not in groups:
            continue
        rate, base_rate = throughput(runs), throughput(groups[base])
        if rate and base_rate:
            out.append(Scaling(key, base, done[0]["devices"], done[0].get("hosts", 1), rate.median, base_rate.median))
    return out
