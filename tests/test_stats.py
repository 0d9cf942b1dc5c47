"""Intervals from scipy.stats: Welch for accuracy, paired and independent ratios for speed."""

import math

import pytest

from mnist_bench.bench.results import stats


def test_t_critical_values_match_tables():
    # The Welch interval's half width over its standard error is Student's t quantile:
    # two samples with equal variance and n = 3 have df exactly 4 (t = 2.7764451 in the tables).
    interval = stats.welch_interval([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    standard_error = math.sqrt(2 * 1.0 / 3)
    assert interval.df == pytest.approx(4.0)
    assert interval.high / standard_error == pytest.approx(2.7764451, abs=1e-6)


def test_paired_ratio_cancels_drift_that_hits_a_whole_round():
    # The machine slows down round by round; A is always 10 % faster than B in the same round.
    drift = [1.0, 0.8, 0.6, 0.9, 0.7]
    a = [1100 * d for d in drift]
    b = [1000 * d for d in drift]
    paired = stats.paired_ratio(a, b)
    assert paired.ratio == pytest.approx(1.1)
    assert (paired.low, paired.high) == pytest.approx((1.1, 1.1))
    # Treated as independent runs, the same figures give a wide interval that includes 1.
    independent = stats.independent_ratio(a, b)
    assert independent.ratio == pytest.approx(1.1)
    assert independent.low < 1.0 < independent.high


def test_paired_ratio_interval_hand_computed():
    # log ratios 0.1, 0.0, 0.2: mean 0.1, sd 0.1, se 0.057735; t(0.975, 2) = 4.3026527.
    a = [math.exp(0.1), 1.0, math.exp(0.2)]
    b = [1.0, 1.0, 1.0]
    paired = stats.paired_ratio(a, b)
    half = 4.3026527 * 0.1 / math.sqrt(3)
    assert paired.ratio == pytest.approx(math.exp(0.1))
    assert paired.low == pytest.approx(math.exp(0.1 - half), rel=1e-6)
    assert paired.high == pytest.approx(math.exp(0.1 + half), rel=1e-6)
    assert paired.text().startswith("1.11x (")


def test_one_round_has_no_interval_and_bad_speeds_are_refused():
    single = stats.paired_ratio([2.0], [1.0])
    assert single.ratio == pytest.approx(2.0) and single.low is None
    assert "no interval" in single.text()
    with pytest.raises(ValueError, match="positive and finite"):
        stats.paired_ratio([1.0, float("nan")], [1.0, 1.0])
    with pytest.raises(ValueError, match="equal"):
        stats.paired_ratio([1.0, 2.0], [1.0])


def test_scipy_gives_the_intervals_the_hand_written_code_gave_on_the_committed_reference():
    """The report's accuracy-parity table of the 2026-11-28 reference, as the hand-written t code printed it."""
    from pathlib import Path

    from mnist_bench.bench.results import report
    from mnist_bench.common.records import read_dirs

    run_dir = Path(__file__).resolve().parent.parent / "results" / "superseded" / "reference-cpu-2026-11-28"
    pairs = {(p.a[0], p.b[0]): p for p in report.accuracy_parity(report.group_runs(read_dirs([run_dir])))}
    printed = {  # difference, low, high in percentage points, and df, from that report.md
        ("flax-linen", "tensorflow"): (-0.02, -0.34, 0.30, 4.0),
        ("flax-linen", "torch"): (-0.04, -0.36, 0.28, 2.28),
        ("tensorflow", "torch"): (-0.02, -0.35, 0.30, 2.28),
    }
    assert set(pairs) == set(printed)
    for key, (difference, low, high, df) in printed.items():
        interval = pairs[key].interval
        assert round(interval.difference * 100, 2) == difference
        assert (round(interval.low * 100, 2), round(interval.high * 100, 2)) == (low, high)
        assert interval.df == pytest.approx(df, abs=0.005)
        assert pairs[key].verdict == "agree"
