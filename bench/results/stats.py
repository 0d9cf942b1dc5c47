"""Intervals for the two kinds of statement the project makes: differences of means and ratios of speeds.

Both come from ``scipy.stats`` (Student's t), not hand-written distributions.

* Accuracy: Welch's interval for mean(a) - mean(b) over seeds.
* Speed: a ratio of samples/s is judged on the log scale, where run-to-run noise
  is roughly symmetric. Repeats measured in interleaved rounds (A B A B, each round
  one pair) give a *paired* interval: the t interval of the mean log ratio,
  so drift that hits a whole round cancels. Independent runs (seeds of two groups)
  give Welch's interval of the difference of mean logs. Either is exponentiated
  back to a ratio: ``ratio (low–high)``, the geometric-mean ratio and its 95 % interval.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Sequence

CONFIDENCE = 0.95


@dataclass(frozen=True)
class WelchInterval:
    """Confidence interval for mean(a) - mean(b), unequal variances allowed."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    df: float  # Welch–Satterthwaite; inf when both samples have zero spread
    confidence: float


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> WelchInterval | None:
    """Welch's t interval for the difference of means, or None if either side has n < 2."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    difference = mean_a - mean_b
    if statistics.variance(a) == 0.0 and statistics.variance(b) == 0.0:
        # Identical repeats: no spread to estimate, so the interval is the point.
        return WelchInterval(len(a), len(b), mean_a, mean_b, difference, difference, difference, math.inf, confidence)
    with warnings.catch_warnings():
        # scipy warns of precision loss when repeats nearly agree (accuracies to 4 digits); the interval holds.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
        low, high = result.confidence_interval(confidence)
    return WelchInterval(len(a), len(b), mean_a, mean_b, difference, float(low), float(high), float(result.df),
                         confidence)


@dataclass(frozen=True)
class RatioInterval:
    """The geometric-mean ratio a/b with its interval; ``low``/``high`` are None when n is too small."""

    ratio: float
    low: float | None
    high: float | None
    n: int  # pairs (paired) or the smaller side (independent)
    method: str
    confidence: float = CONFIDENCE

    @property
    def spread(self) -> float | None:
        """Half the interval's width relative to the ratio: ±3 % is 0.03."""
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2 / self.ratio

    def text(self, digits: int = 2) -> str:
        if self.low is None:
            return f"{self.ratio:.{digits}f}x (n={self.n}, no interval)"
        return f"{self.ratio:.{digits}f}x ({self.low:.{digits}f}–{self.high:.{digits}f})"


def _logs(values: Sequence[float]) -> list[float]:
    if any(not (v > 0 and math.isfinite(v)) for v in values):
        raise ValueError(f"speeds must be positive and finite, got {list(values)}")
    return [math.log(v) for v in values]


def paired_ratio(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> RatioInterval:
    """a/b from interleaved rounds: ``a[i]`` and ``b[i]`` were measured in the same round."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired rounds need equal, non-zero counts, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(_logs(a), _logs(b))]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return RatioInterval(math.exp(mean), None, None, len(diffs), "paired rounds", confidence)
    if statistics.pstdev(diffs) == 0.0:
        return RatioInterval(math.exp(mean), math.exp(mean), math.exp(mean), len(diffs), "paired rounds", confidence)
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # as in welch_interval
        low, high = stats.ttest_1samp(diffs, 0.0).confidence_interval(confidence)
    return RatioInterval(math.exp(mean), math.exp(float(low)), math.exp(float(high)), len(diffs),
                         "paired t on log ratios of interleaved rounds", confidence)


def independent_ratio(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> RatioInterval:
    """a/b from independent runs (e.g. the seeds of two groups): Welch on the logs."""
    log_a, log_b = _logs(a), _logs(b)
    interval = welch_interval(log_a, log_b, confidence)
    ratio = math.exp(statistics.fmean(log_a) - statistics.fmean(log_b))
    if interval is None:
        return RatioInterval(ratio, None, None, min(len(a), len(b)), "Welch t on log speeds", confidence)
    return RatioInterval(ratio, math.exp(interval.low), math.exp(interval.high), min(len(a), len(b)),
                         "Welch t on log speeds", confidence)
