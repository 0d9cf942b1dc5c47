"""Builders of the report's result sections, each from grouped records to document blocks."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from mnist_bench.bench.results import contended as load
from mnist_bench.bench.results.export import error_text, rows
from mnist_bench.bench.results.formatting import MISSING, byte_size, number, percent, points
from mnist_bench.bench.results.grouping import GroupKey, GroupLabeller, finished, group_key
from mnist_bench.bench.results.report.document import Block, Paragraph, Preformatted, Table
from mnist_bench.bench.results.report.measures import (
    AccuracyParity, Scaling, final_accuracies, median_or_none, peak_gflops, recorded_values, throughput,
)
from mnist_bench.bench.results.stats import CONFIDENCE

SUMMARY_NOTE = (
    "One row per (backend, mode, device). Accuracy is mean ± sample standard deviation over seeds; "
    "samples/s is the median of the per-run steady-state medians; first step includes compilation; "
    "time and wall are medians; memory is the maximum over runs. Others' CPU use: the largest share of a "
    "run's CPUs that other processes used while it trained (read from /proc); above "
    "5 % a run is contended and its speed is not a figure of the framework. A dash means not measured."
)
SCALING_NOTE = (
    "Scaling efficiency = samples/s on N devices / (N x samples/s on one device), steady-state medians, the "
    "global batch fixed at the recipe's batch. Virtual CPU devices share the same cores, so on CPU this "
    "measures the cost of distributing, not real scaling."
)
NUMERICAL_PARITY_NOTE = (
    "As recorded in parity.json: the largest absolute difference between two backends "
    "on the same input, against its tolerance."
)


def distinct(values) -> list[str]:
    return sorted(set(values))


# --------------------------------------------------------------------------
# Summary: one row per group.


def _accuracy_cell(runs: list[dict]) -> str:
    accuracies = final_accuracies(runs)
    if len(accuracies) >= 2:
        return f"{statistics.fmean(accuracies) * 100:.2f} ± {statistics.stdev(accuracies) * 100:.2f} %"
    return percent(accuracies[0]) if accuracies else MISSING


def _time_to_target_cell(runs: list[dict]) -> str:
    done, reached = finished(runs), recorded_values(runs, "timing", "time_to_target_s")
    if not done:
        return MISSING
    if not reached:
        return "not reached"
    if len(reached) == len(done):
        return number(statistics.median(reached))
    return f"{number(statistics.median(reached))} ({len(reached)}/{len(done)} reached)"


def _fraction_of_peak_cell(runs: list[dict]) -> str:
    fractions = [
        run["flops"]["achieved_gflops"] / peak
        for run in finished(runs)
        if (peak := peak_gflops(run)) and (run.get("flops") or {}).get("achieved_gflops") is not None
    ]
    return percent(median_or_none(fractions), 1)


def _summary_row(runs: list[dict], label: str, with_peak: bool) -> list[str]:
    done = finished(runs)
    f1 = [run["final"]["test"]["macro_f1"] for run in done if (run.get("final") or {}).get("test")]
    rate = throughput(runs)
    rss = recorded_values(runs, "memory", "peak_rss_bytes")
    device_memory = recorded_values(runs, "memory", "peak_device_bytes")
    cells = [
        label,
        f"{len(done)}/{len(runs)}",
        _accuracy_cell(runs),
        f"{statistics.fmean(f1):.4f}" if f1 else MISSING,
        number(rate.median) if rate else MISSING,
        f"{number(rate.low)}–{number(rate.high)} ({rate.spread})" if rate else MISSING,
        load.load_text(runs),
        number(median_or_none(recorded_values(runs, "timing", "first_step_s"))),
        _time_to_target_cell(runs),
        number(median_or_none(recorded_values(runs, "timing", "total_wall_s"))),
        byte_size(max(rss) if rss else None),
        byte_size(max(device_memory) if device_memory else None),
        number(median_or_none(recorded_values(runs, "flops", "achieved_gflops"))),
    ]
    return cells + ([_fraction_of_peak_cell(runs)] if with_peak else [])


def _peak_text(run: dict) -> str | None:
    block = run.get("peak") or {}
    if not block.get("gflops"):
        return None
    threads = f", {block['threads']} threads" if block.get("threads") else ""
    return f"{number(block['gflops'])} GFLOP/s ({block.get('source', '?')} on {block.get('device', '?')}{threads})"


def summary_blocks(groups: dict[GroupKey, list[dict]], label: GroupLabeller) -> list[Block]:
    records = [run for runs in groups.values() for run in runs]
    targets = {run["timing"].get("target_accuracy") for run in finished(records)} - {None}
    target_header = f"Time to {percent(targets.pop(), 1)} (s)" if len(targets) == 1 else "Time to target (s)"
    with_peak = any(peak_gflops(run) for run in records)
    headers = [
        "Group", "Runs ok", "Test accuracy", "Macro F1", "Samples/s", "Spread", "Others' CPU use", "First step (s)",
        target_header, "Wall (s)", "Peak RSS", "Peak device mem", "GFLOP/s",
    ] + (["% of peak"] if with_peak else [])
    table = Table(headers, [], numeric=set(range(1, len(headers))))
    for index, (key, runs) in enumerate(groups.items()):
        table.rows.append(_summary_row(runs, label(key), with_peak))
        if not finished(runs) or load.contended(finished(runs)):
            table.bad_rows.add(index)
    blocks: list[Block] = [table, Paragraph(SUMMARY_NOTE)]
    if with_peak:
        peaks = distinct(text for run in records if (text := _peak_text(run)))
        blocks.append(Paragraph(
            "% of peak: the median over runs of achieved training GFLOP/s divided by the fp32 matmul peak "
            "measured in the same sweep (NumPy on a CPU, the run's framework on a GPU): " + "; ".join(peaks) + "."
        ))
    return blocks


# --------------------------------------------------------------------------
# Scaling, accuracy parity and numerical parity.


def scaling_blocks(found: list[Scaling], label: GroupLabeller) -> list[Block]:
    table = Table(["Group", "Devices", "Hosts", "Samples/s", "Samples/s on 1 device", "Speed-up", "Efficiency"], [],
                  numeric={1, 2, 3, 4, 5, 6})
    for s in found:
        table.rows.append([label(s.key), str(s.devices), str(s.hosts), number(s.rate), number(s.base_rate),
                           f"{s.rate / s.base_rate:.2f}x", percent(s.efficiency, 1)])
    return [table, Paragraph(SCALING_NOTE)]


def _parity_row(pair: AccuracyParity, label: GroupLabeller) -> list[str]:
    interval = pair.interval
    mean_a, mean_b = statistics.fmean(pair.accuracies_a), statistics.fmean(pair.accuracies_b)
    return [
        label(pair.a),
        label(pair.b),
        str(len(pair.accuracies_a)),
        str(len(pair.accuracies_b)),
        percent(mean_a),
        percent(mean_b),
        points(mean_a - mean_b),
        f"[{points(interval.low)}, {points(interval.high)}]" if interval else MISSING,
        number(interval.df, 3) if interval else MISSING,
        pair.verdict,
    ]


def accuracy_parity_blocks(parity_pairs: list[AccuracyParity], label: GroupLabeller, margin: float) -> list[Block]:
    if not parity_pairs:
        return [Paragraph("Fewer than two groups have finished runs, so there is nothing to compare.")]
    table = Table(
        ["A", "B", "n A", "n B", "Mean A", "Mean B", "A − B", "95% CI of A − B", "df", "Verdict"],
        [_parity_row(pair, label) for pair in parity_pairs],
        numeric={2, 3, 4, 5, 6, 7, 8},
        bad_rows={index for index, pair in enumerate(parity_pairs) if pair.verdict == "differ"},
    )
    method = Paragraph(
        f"This is a statistical statement about the mean final test accuracy over seeds, not about any single run. "
        f"Method: Welch's t interval ({CONFIDENCE:.0%}, two-sided, unequal variances, Welch–Satterthwaite df) "
        f"for the difference of means; n is the number of finished runs (seeds) on each side. "
        f"Verdict 'agree' means the whole interval lies within the equivalence margin of ±{margin * 100:.2f} pp; "
        f"'differ' means it lies wholly outside; otherwise the data cannot tell (more seeds narrow the interval). "
        f"With n < 2 on either side no interval exists."
    )
    return [table, method]


def _recorded_float(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.3g}"
    return MISSING if value is None else str(value)


def numerical_parity_blocks(parity_checks: list[tuple[Path, dict]]) -> list[Block]:
    table = Table(["Run dir", "A", "B", "Check", "Max |diff|", "Tolerance", "Result"], [], numeric={4, 5})
    for index, (run_dir, check) in enumerate(parity_checks):
        passed = check.get("passed") is True
        table.rows.append([
            run_dir.name,
            str(check.get("a", MISSING)),
            str(check.get("b", MISSING)),
            str(check.get("check", MISSING)),
            _recorded_float(check.get("max_abs_diff")),
            _recorded_float(check.get("tolerance")),
            "pass" if passed else "FAIL",
        ])
        if not passed:
            table.bad_rows.add(index)
    return [table, Paragraph(NUMERICAL_PARITY_NOTE)]


# --------------------------------------------------------------------------
# Per run: the failures, and every run.


def failed_run_blocks(records: list[dict], label: GroupLabeller) -> list[Block]:
    unfinished = [run for run in records if run["status"] != "ok"]
    if not unfinished:
        return [Paragraph("None: every run finished ok.")]
    table = Table(["Run", "Group", "Seed", "Status", "Error"], [], numeric={2}, bad_rows=set(range(len(unfinished))))
    blocks: list[Block] = [table]
    for run in unfinished:
        table.rows.append(
            [run["run_id"], label(group_key(run)), str(run["seed"]), run["status"], error_text(run) or MISSING])
        if tail := (run.get("error") or {}).get("tail"):
            blocks += [Paragraph(f"Last output of {run['run_id']}:"), Preformatted(tail)]
    return blocks


def all_runs_blocks(records: list[dict], label: GroupLabeller) -> list[Block]:
    headers = ["Run", "Group", "Seed", "Status", "Epochs", "Test accuracy", "Samples/s", "Others' CPU use", "Wall (s)"]
    table = Table(headers, [], numeric={2, 4, 5, 6, 7, 8})
    for index, (record, flat) in enumerate(zip(records, rows(records))):
        table.rows.append([
            flat["run_id"], label(group_key(record)), str(flat["seed"]), flat["status"], str(flat["epochs"]),
            percent(flat["test_accuracy"]), number(flat["steady_samples_per_s"]), load.load_text([record]),
            number(flat["total_wall_s"]),
        ])
        if flat["status"] != "ok" or load.is_contended(record):
            table.bad_rows.add(index)
    return [table]
