"""Turn run directories into one Markdown and one self-contained HTML report.

The report is built once as a small document model (sections of paragraphs,
tables, figures and preformatted text) and then rendered twice, so the two
formats can never disagree and every string taken from a record passes
through exactly one escaping function per format. Records are untrusted
input: a backend's error message can hold anything, including markup.

Accuracy parity is a statistical statement about the mean over seeds (Welch's
t interval); numerical parity (``parity.json``) is shown as recorded.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from mnist_bench.bench.results import contended as load
from mnist_bench.bench.results.export import error_text, rows, versions_text
from mnist_bench.bench.results.stats import CONFIDENCE, RatioInterval, WelchInterval, independent_ratio, paired_ratio, welch_interval
from mnist_bench.common.records import RecordError, device_group, read_dirs

DEFAULT_MARGIN = 0.005  # half a percentage point of test accuracy
MISSING = "—"
MANIFEST = "manifest.json"
PARITY = "parity.json"

GroupKey = tuple[str, str, str]  # (backend, mode, device)
Warn = Callable[[str], None]


# --------------------------------------------------------------------------
# Accuracy parity: Welch's interval (mnist_bench.bench.results.stats) against a margin.


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
    accuracies = {key: tuple(_final_accuracies(runs)) for key, runs in sorted(groups.items())}
    measured = [key for key, values in accuracies.items() if values]
    result = []
    for a, b in itertools.combinations(measured, 2):
        interval = welch_interval(accuracies[a], accuracies[b])
        result.append(AccuracyParity(a, b, accuracies[a], accuracies[b], interval, margin, parity_verdict(interval, margin)))
    return result


# --------------------------------------------------------------------------
# Reading records and per-group numbers.


def _ok(runs: Iterable[dict]) -> list[dict]:
    return [run for run in runs if run["status"] == "ok"]


def _final_accuracies(runs: Iterable[dict]) -> list[float]:
    return [run["final"]["test"]["accuracy"] for run in _ok(runs) if (run.get("final") or {}).get("test")]


def _values(runs: Iterable[dict], block: str, name: str) -> list[float]:
    """Non-null ``run[block][name]`` of the finished runs."""
    found = ((run.get(block) or {}).get(name) for run in _ok(runs))
    return [value for value in found if value is not None]


def group_runs(records: Iterable[dict]) -> dict[GroupKey, list[dict]]:
    """Records by (backend, mode, device), sorted by key then seed; failed runs included."""
    groups: dict[GroupKey, list[dict]] = {}
    for record in records:
        groups.setdefault((record["backend"], record["mode"], device_group(record)), []).append(record)
    return {key: sorted(groups[key], key=lambda run: (run["seed"], run["run_id"])) for key in sorted(groups)}


def _labeller(keys: Iterable[GroupKey]) -> Callable[[GroupKey], str]:
    # The device only earns a place in the label when the runs used more than one.
    several_devices = len({device for _, _, device in keys}) > 1
    return lambda key: "/".join(key if several_devices else key[:2])


@dataclass(frozen=True)
class Throughput:
    median: float
    low: float
    high: float
    spread: str  # how low..high was obtained, for the reader


def throughput(runs: Iterable[dict]) -> Throughput | None:
    """Median of the per-run steady-state medians, with min–max (or one run's IQR)."""
    finished = [run for run in _ok(runs) if (run.get("timing") or {}).get("steady_samples_per_s") is not None]
    medians = [run["timing"]["steady_samples_per_s"] for run in finished]
    if not medians:
        return None
    median = statistics.median(medians)
    if len(medians) == 1:
        timing = finished[0]["timing"]
        q1, q3 = timing.get("steady_samples_per_s_q1"), timing.get("steady_samples_per_s_q3")
        if q1 is not None and q3 is not None:
            return Throughput(median, q1, q3, "IQR of 1 run")
        return Throughput(median, median, median, "1 run")
    return Throughput(median, min(medians), max(medians), f"range of {len(medians)} runs")


def _peak_gflops(run: dict) -> float | None:
    # The optional peak block (the fp32 matmul peak measured in the run's sweep); older records have none.
    # The schema has no timing.peak_gflops: peak.gflops is the one place a record keeps it.
    return (run.get("peak") or {}).get("gflops")


def _peak_text(run: dict) -> str | None:
    block = run.get("peak") or {}
    if not block.get("gflops"):
        return None
    threads = f", {block['threads']} threads" if block.get("threads") else ""
    return f"{_number(block['gflops'])} GFLOP/s ({block.get('source', '?')} on {block.get('device', '?')}{threads})"


# --------------------------------------------------------------------------
# Formatting.


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if math.isinf(value):
        return "∞"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _percent(fraction: float | None, decimals: int = 2) -> str:
    return MISSING if fraction is None else f"{fraction * 100:.{decimals}f} %"


def _points(fraction: float) -> str:
    """A difference of accuracies in signed percentage points."""
    return f"{fraction * 100:+.2f} pp"


def _bytes(count: float | None) -> str:
    if count is None:
        return MISSING
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": ")) if value not in (None, {}) else MISSING


# --------------------------------------------------------------------------
# Document model.


@dataclass
class Paragraph:
    text: str
    strong: bool = False


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # right-aligned column indices
    bad_rows: set[int] = field(default_factory=set)  # highlighted (failed runs, failed checks)


@dataclass
class Figure:
    name: str
    caption: str
    png: bytes


@dataclass
class Preformatted:
    text: str


Block = Paragraph | Table | Figure | Preformatted


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block]


# --------------------------------------------------------------------------
# Plots (matplotlib, imported lazily so importing this module stays cheap).


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    # No software/date metadata, so the same records give byte-identical plots.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _colours(keys: list[GroupKey]) -> dict[GroupKey, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {key: palette(index % 10) for index, key in enumerate(keys)}


def _throughput_figure(groups, label, colours) -> Figure | None:
    measured = [(key, throughput(runs)) for key, runs in groups.items()]
    measured = [(key, value) for key, value in measured if value is not None]
    if not measured:
        return None
    figure = _new_figure(7.5, 0.5 * len(measured) + 1.4)
    axes = figure.add_subplot()
    positions = range(len(measured))
    medians = [value.median for _, value in measured]
    errors = [[value.median - value.low for _, value in measured], [value.high - value.median for _, value in measured]]
    axes.barh(positions, medians, xerr=errors, capsize=4, color=[colours[key] for key, _ in measured])
    axes.set_yticks(list(positions), [label(key) for key, _ in measured])
    axes.invert_yaxis()
    axes.set_xlabel("training samples/s, steady state")
    axes.set_title("Training throughput (median; whiskers: min–max of runs, or IQR of a single run)", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    return Figure("throughput", "Steady-state training throughput per group.", _png(figure))


def _mean_by_epoch(runs: list[dict], value: Callable[[dict, list[dict]], list[float]]) -> tuple[list[int], list[float]]:
    """Per epoch number, the mean over runs of ``value(run, epochs)[i]``."""
    by_epoch: dict[int, list[float]] = {}
    for run in _ok(runs):
        epochs = run.get("epochs") or []
        for epoch, number in zip(epochs, value(run, epochs)):
            by_epoch.setdefault(epoch["epoch"], []).append(number)
    numbers = sorted(by_epoch)
    return numbers, [statistics.fmean(by_epoch[number]) for number in numbers]


def _elapsed(run: dict, epochs: list[dict]) -> list[float]:
    # Prefer the harness's own clock; else add up epoch walls.
    if epochs and all("elapsed_s" in epoch for epoch in epochs):
        return [epoch["elapsed_s"] for epoch in epochs]
    return list(itertools.accumulate(epoch["wall_s"] for epoch in epochs))


def _epoch_figures(groups, label, colours) -> list[Figure]:
    with_epochs = {key: runs for key, runs in groups.items() if any(run.get("epochs") for run in _ok(runs))}
    if not with_epochs:
        return []
    figure = _new_figure(11, 4)
    accuracy_axes, loss_axes = figure.subplots(1, 2)
    timeline = _new_figure(7.5, 4)
    timeline_axes = timeline.add_subplot()
    for key, runs in with_epochs.items():
        style = {"color": colours[key], "marker": "o", "label": label(key)}
        epochs, accuracy = _mean_by_epoch(runs, lambda run, rows_: [row["test_accuracy"] * 100 for row in rows_])
        accuracy_axes.plot(epochs, accuracy, **style)
        epochs, loss = _mean_by_epoch(runs, lambda run, rows_: [row["train_loss"] for row in rows_])
        loss_axes.plot(epochs, loss, **style)
        # Mean elapsed time and mean accuracy per epoch: one point per epoch.
        _, seconds = _mean_by_epoch(runs, _elapsed)
        timeline_axes.plot(seconds, accuracy, **style)
    accuracy_axes.set(title="Test accuracy per epoch (mean over seeds)", xlabel="epoch", ylabel="test accuracy (%)")
    loss_axes.set(title="Training loss per epoch (mean over seeds)", xlabel="epoch", ylabel="training loss")
    timeline_axes.set(
        title="Test accuracy vs wall-clock time (mean over seeds)",
        xlabel="wall-clock seconds since start",
        ylabel="test accuracy (%)",
    )
    for axes in (accuracy_axes, loss_axes, timeline_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        axes.xaxis.get_major_locator().set_params(integer=axes is not timeline_axes)
    return [
        Figure("epochs", "Test accuracy and training loss per epoch, averaged over seeds.", _png(figure)),
        Figure(
            "wall_clock",
            "Test accuracy against elapsed wall-clock time (epochs[].elapsed_s, else the running sum of epochs[].wall_s).",
            _png(timeline),
        ),
    ]


def _confusion_figure(records: list[dict]) -> Figure | None:
    import numpy as np

    summed: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for run in _ok(records):
        matrix = ((run.get("final") or {}).get("test") or {}).get("confusion")
        if not matrix:
            continue
        matrix = np.asarray(matrix, dtype=np.int64)
        previous = summed.get(run["backend"])
        if previous is not None and previous.shape != matrix.shape:
            continue  # a different class count cannot be summed; keep the first shape
        summed[run["backend"]] = matrix if previous is None else previous + matrix
        counts[run["backend"]] = counts.get(run["backend"], 0) + 1
    if not summed:
        return None
    figure = _new_figure(4.6 * len(summed), 4.6)
    for axes, (backend, matrix) in zip(np.atleast_1d(figure.subplots(1, len(summed))), sorted(summed.items())):
        row_totals = matrix.sum(axis=1, keepdims=True)
        recall = matrix / np.maximum(row_totals, 1)
        axes.imshow(recall, cmap="Blues", vmin=0, vmax=1)
        for (true, predicted), count in np.ndenumerate(matrix):
            if count:
                axes.text(predicted, true, str(count), ha="center", va="center", fontsize=6,
                          color="white" if recall[true, predicted] > 0.5 else "black")
        axes.set(title=f"{backend} (sum of {counts[backend]} runs)", xlabel="predicted", ylabel="true")
        axes.set_xticks(range(matrix.shape[1]))
        axes.set_yticks(range(matrix.shape[0]))
        axes.tick_params(labelsize=7)
    return Figure(
        "confusion",
        "Test-set confusion matrices per backend, summed over every finished run (all modes, devices and seeds); "
        "colour is the row-normalised rate, numbers are counts.",
        _png(figure),
    )


def _figures(groups: dict[GroupKey, list[dict]], label, warn: Warn | None) -> tuple[list[Figure], list[Block]]:
    """The plots, or a note saying why there are none."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        message = "plots skipped: matplotlib is not installed (pip install 'mnist-bench[report]')"
        if warn:
            warn(message)
        return [], [Paragraph(message)]
    colours = _colours(list(groups))
    figures = [_throughput_figure(groups, label, colours), *_epoch_figures(groups, label, colours)]
    figures.append(_confusion_figure([run for runs in groups.values() for run in runs]))
    figures = [figure for figure in figures if figure is not None]
    return figures, ([] if figures else [Paragraph("No finished run, so nothing to plot.")])


# --------------------------------------------------------------------------
# Sections.


def _headline(groups, label, parity_pairs, margin, parity_checks, records) -> list[Block]:
    blocks: list[Block] = []
    speeds = sorted(
        ((value.median, key) for key, runs in groups.items() if (value := throughput(runs)) is not None), reverse=True
    )
    if not speeds:
        speed = "No run measured steady-state throughput"
    elif len(speeds) == 1:
        speed = f"Only {label(speeds[0][1])} measured steady-state throughput: {_number(speeds[0][0])} samples/s"
    else:
        fastest, key = speeds[0]
        others = ", ".join(f"{speed_ratio(groups[key], groups[other]).text()} {label(other)}" for _, other in speeds[1:])
        speed = (f"{label(key)} is fastest at {_number(fastest)} samples/s (median steady state): {others} "
                 f"(speed ratios with their {CONFIDENCE:.0%} intervals)")

    margin_text = f"±{margin * 100:.2f} pp"
    if not parity_pairs:
        measured = [key for key, runs in groups.items() if _final_accuracies(runs)]
        accuracy = (
            f"test accuracy {_percent(statistics.fmean(_final_accuracies(groups[measured[0]])))}; no second group to compare"
            if measured
            else "no finished run reports test accuracy"
        )
    else:
        agree = [pair for pair in parity_pairs if pair.verdict == "agree"]
        if len(agree) == len(parity_pairs):
            scope = "the only pair" if len(parity_pairs) == 1 else f"all {len(parity_pairs)} pairs"
            accuracy = f"accuracy agrees within {margin_text} for {scope}"
        else:
            accuracy = f"accuracy agrees within {margin_text} for {len(agree)} of {len(parity_pairs)} pairs"
            for verdict in ("differ", "inconclusive"):
                pairs = [pair for pair in parity_pairs if pair.verdict.startswith(verdict)]
                if pairs:
                    names = "; ".join(
                        f"{label(pair.a)} vs {label(pair.b)}"
                        + (f" ({_points(pair.interval.difference)})" if pair.interval else " (n too small)")
                        for pair in pairs[:4]
                    )
                    more = f" and {len(pairs) - 4} more" if len(pairs) > 4 else ""
                    accuracy += f"; {verdict}: {names}{more}"
    blocks.append(Paragraph(f"{speed}; {accuracy}.", strong=True))

    blocks.append(_load_paragraph(records))
    unfinished = [run for run in records if run["status"] != "ok"]
    if not records:
        blocks.append(Paragraph("No readable run records."))
    elif unfinished:
        by_status = ", ".join(
            f"{sum(run['status'] == status for run in unfinished)} {status}"
            for status in sorted({run["status"] for run in unfinished})
        )
        blocks.append(Paragraph(f"{len(unfinished)} of {len(records)} runs did not finish ok ({by_status}); see Failed runs."))
    else:
        blocks.append(Paragraph(f"All {len(records)} runs finished ok."))
    if parity_checks:
        failed = [check for _, check in parity_checks if check.get("passed") is not True]
        blocks.append(
            Paragraph(
                f"Numerical parity: {len(parity_checks) - len(failed)} of {len(parity_checks)} checks passed"
                + (f"; {len(failed)} FAILED." if failed else ".")
            )
        )
    return blocks


def speed_ratio(a: list[dict], b: list[dict]) -> RatioInterval:
    """Group a's speed over group b's. Seeds run in seed-major order, so the same seed of two groups ran
    in the same round: paired by seed where at least two seeds are shared, else independent runs."""
    rates = [{run["seed"]: run["timing"]["steady_samples_per_s"] for run in _ok(runs)
              if (run.get("timing") or {}).get("steady_samples_per_s")} for runs in (a, b)]
    shared = sorted(rates[0].keys() & rates[1].keys())
    if len(shared) >= 2:
        return paired_ratio([rates[0][seed] for seed in shared], [rates[1][seed] for seed in shared])
    return independent_ratio(list(rates[0].values()), list(rates[1].values()))


def _load_paragraph(records: list[dict]) -> Paragraph:
    finished = _ok(records)
    busy, unknown = load.contended(finished), load.unmeasured(finished)
    shares = [share for run in finished if (share := load.other_share(run)) is not None]
    if busy:
        return Paragraph(
            f"{load.WARNING} {len(busy)} of {len(finished)} finished runs were measured on a busy machine: other "
            f"processes used up to {max(shares) * 100:.0f} % of their CPUs while they trained. The speed figures "
            "rest on contended runs and are not figures of the frameworks; re-run them on a quiet machine "
            "(flagged rows below).", strong=True)
    if unknown:
        return Paragraph(f"{len(unknown)} of {len(finished)} finished runs do not record their machine's load "
                         "(written before runs measured it): whether the machine was quiet is unknown.")
    if shares:
        return Paragraph(f"Quiet machine: other processes used at most {max(shares) * 100:.1f} % of a run's CPUs "
                         "while it trained.")
    return Paragraph("No finished run measured its machine's load.")


def _summary(groups, label) -> list[Block]:
    records = [run for runs in groups.values() for run in runs]
    targets = {run["timing"].get("target_accuracy") for run in _ok(records)} - {None}
    target_header = f"Time to {_percent(targets.pop(), 1)} (s)" if len(targets) == 1 else "Time to target (s)"
    with_peak = any(_peak_gflops(run) for run in records)
    headers = [
        "Group", "Runs ok", "Test accuracy", "Macro F1", "Samples/s", "Spread", "Others' CPU use", "First step (s)",
        target_header, "Wall (s)", "Peak RSS", "Peak device mem", "GFLOP/s",
    ] + (["% of peak"] if with_peak else [])
    table = Table(headers, [], numeric=set(range(1, len(headers))))
    for index, (key, runs) in enumerate(groups.items()):
        finished = _ok(runs)
        accuracies = _final_accuracies(runs)
        if len(accuracies) >= 2:
            accuracy = f"{statistics.fmean(accuracies) * 100:.2f} ± {statistics.stdev(accuracies) * 100:.2f} %"
        else:
            accuracy = _percent(accuracies[0]) if accuracies else MISSING
        f1 = [run["final"]["test"]["macro_f1"] for run in finished if (run.get("final") or {}).get("test")]
        rate = throughput(runs)
        reached = _values(runs, "timing", "time_to_target_s")
        if not finished:
            to_target = MISSING
        elif not reached:
            to_target = "not reached"
        elif len(reached) == len(finished):
            to_target = _number(statistics.median(reached))
        else:
            to_target = f"{_number(statistics.median(reached))} ({len(reached)}/{len(finished)} reached)"
        rss, device_memory = _values(runs, "memory", "peak_rss_bytes"), _values(runs, "memory", "peak_device_bytes")
        cells = [
            label(key),
            f"{len(finished)}/{len(runs)}",
            accuracy,
            f"{statistics.fmean(f1):.4f}" if f1 else MISSING,
            _number(rate.median) if rate else MISSING,
            f"{_number(rate.low)}–{_number(rate.high)} ({rate.spread})" if rate else MISSING,
            load.load_text(runs),
            _number(_median(_values(runs, "timing", "first_step_s"))),
            to_target,
            _number(_median(_values(runs, "timing", "total_wall_s"))),
            _bytes(max(rss) if rss else None),
            _bytes(max(device_memory) if device_memory else None),
            _number(_median(_values(runs, "flops", "achieved_gflops"))),
        ]
        if with_peak:
            fractions = [
                run["flops"]["achieved_gflops"] / peak
                for run in finished
                if (peak := _peak_gflops(run)) and (run.get("flops") or {}).get("achieved_gflops") is not None
            ]
            cells.append(_percent(_median(fractions), 1))
        table.rows.append(cells)
        if not finished or load.contended(finished):
            table.bad_rows.add(index)
    note = Paragraph(
        "One row per (backend, mode, device). Accuracy is mean ± sample standard deviation over seeds; "
        "samples/s is the median of the per-run steady-state medians; first step includes compilation; "
        "time and wall are medians; memory is the maximum over runs. Others' CPU use: the largest share of a "
        "run's CPUs that other processes used while it trained (read from /proc); above "
        "5 % a run is contended and its speed is not a figure of the framework. A dash means not measured."
    )
    blocks: list[Block] = [table, note]
    if with_peak:
        peaks = _distinct(text for run in records if (text := _peak_text(run)))
        blocks.append(Paragraph(
            "% of peak: the median over runs of achieved training GFLOP/s divided by the fp32 matmul peak "
            "measured in the same sweep (NumPy on a CPU, the run's framework on a GPU): " + "; ".join(peaks) + "."
        ))
    return blocks


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
        finished = _ok(runs)
        base = (key[0], key[1], finished[0]["device"]) if finished else None
        if base is None or base == key or base not in groups:
            continue
        rate, base_rate = throughput(runs), throughput(groups[base])
        if rate and base_rate:
            out.append(Scaling(key, base, finished[0]["devices"], finished[0].get("hosts", 1), rate.median,
                               base_rate.median))
    return out


def _scaling_section(found: list[Scaling], label) -> list[Block]:
    table = Table(["Group", "Devices", "Hosts", "Samples/s", "Samples/s on 1 device", "Speed-up", "Efficiency"], [],
                  numeric={1, 2, 3, 4, 5, 6})
    for s in found:
        table.rows.append([label(s.key), str(s.devices), str(s.hosts), _number(s.rate), _number(s.base_rate),
                           f"{s.rate / s.base_rate:.2f}x", _percent(s.efficiency, 1)])
    return [table, Paragraph(
        "Scaling efficiency = samples/s on N devices / (N x samples/s on one device), steady-state medians, the "
        "global batch fixed at the recipe's batch. Virtual CPU devices share the same cores, so on CPU this "
        "measures the cost of distributing, not real scaling.")]


def _parity_section(parity_pairs: list[AccuracyParity], label, margin: float) -> list[Block]:
    if not parity_pairs:
        return [Paragraph("Fewer than two groups have finished runs, so there is nothing to compare.")]
    table = Table(
        ["A", "B", "n A", "n B", "Mean A", "Mean B", "A − B", "95% CI of A − B", "df", "Verdict"],
        [],
        numeric={2, 3, 4, 5, 6, 7, 8},
    )
    for index, pair in enumerate(parity_pairs):
        interval = pair.interval
        mean_a, mean_b = statistics.fmean(pair.accuracies_a), statistics.fmean(pair.accuracies_b)
        table.rows.append([
            label(pair.a),
            label(pair.b),
            str(len(pair.accuracies_a)),
            str(len(pair.accuracies_b)),
            _percent(mean_a),
            _percent(mean_b),
            _points(mean_a - mean_b),
            f"[{_points(interval.low)}, {_points(interval.high)}]" if interval else MISSING,
            _number(interval.df, 3) if interval else MISSING,
            pair.verdict,
        ])
        if pair.verdict == "differ":
            table.bad_rows.add(index)
    method = Paragraph(
        f"This is a statistical statement about the mean final test accuracy over seeds, not about any single run. "
        f"Method: Welch's t interval ({CONFIDENCE:.0%}, two-sided, unequal variances, Welch–Satterthwaite df) "
        f"for the difference of means; n is the number of finished runs (seeds) on each side. "
        f"Verdict 'agree' means the whole interval lies within the equivalence margin of ±{margin * 100:.2f} pp; "
        f"'differ' means it lies wholly outside; otherwise the data cannot tell (more seeds narrow the interval). "
        f"With n < 2 on either side no interval exists."
    )
    return [table, method]


def _numerical_parity(parity_checks: list[tuple[Path, dict]]) -> list[Block]:
    table = Table(["Run dir", "A", "B", "Check", "Max |diff|", "Tolerance", "Result"], [], numeric={4, 5})
    for index, (run_dir, check) in enumerate(parity_checks):
        passed = check.get("passed") is True
        table.rows.append([
            run_dir.name,
            str(check.get("a", MISSING)),
            str(check.get("b", MISSING)),
            str(check.get("check", MISSING)),
            _float_text(check.get("max_abs_diff")),
            _float_text(check.get("tolerance")),
            "pass" if passed else "FAIL",
        ])
        if not passed:
            table.bad_rows.add(index)
    explanation = Paragraph(
        "As recorded in parity.json: the largest absolute difference between two backends "
        "on the same input, against its tolerance."
    )
    return [table, explanation]


def _float_text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.3g}"
    return MISSING if value is None else str(value)


def _distinct(values: Iterable[str]) -> list[str]:
    return sorted(set(values))


def _machine_text(machine: dict) -> list[tuple[str, str]]:
    gpus = machine.get("gpus") or []
    return [
        ("CPU", " · ".join(str(part) for part in (machine.get("cpu_model") or MISSING, machine.get("cpu_id"),
                                                    " ".join(machine.get("cpu_flags") or [])) if part)),
        ("Cores", f"{machine.get('logical_cores') or MISSING} logical, {machine.get('physical_cores') or MISSING} physical"),
        ("Memory", _bytes(machine.get("memory_total_bytes"))),
        (
            "GPUs",
            "; ".join(
                f"{gpu.get('name', '?')} ({gpu.get('memory_total_mib', '?')} MiB, driver {gpu.get('driver_version', '?')})"
                for gpu in gpus
            )
            or "none",
        ),
        ("OS", str(machine.get("os") or MISSING)),
        ("Python", f"{machine.get('python') or MISSING} {machine.get('python_implementation') or ''}".strip()),
    ]


def _environment(loaded: list[tuple[Path, list[dict]]], manifests: dict[Path, dict], groups, label) -> list[Block]:
    records = [run for _, runs in loaded for run in runs]
    blocks: list[Block] = [Paragraph("Command (exact, as recorded):")]
    for run_dir, runs in loaded:
        manifest = manifests.get(run_dir)
        if manifest and manifest.get("command"):
            commands, source = [str(manifest["command"])], "manifest.json"
        else:
            commands, source = _distinct(run["command"] for run in runs), "run records"
        blocks.append(Paragraph(f"{run_dir} (from {source}):"))
        blocks.append(Preformatted("\n".join(commands) or MISSING))

    versions = Table(["Backend", "Versions"], [])
    for backend in _distinct(run["backend"] for run in records):
        texts = _distinct(versions_text(run.get("versions")) for run in records if run["backend"] == backend)
        versions.rows.append([backend, " / ".join(text for text in texts if text) or MISSING])
    blocks += [Paragraph("Framework versions per backend:"), versions]

    machines = {json.dumps(run.get("machine") or {}, sort_keys=True): run.get("machine") or {} for run in records}
    if len(machines) > 1:
        blocks.append(
            Paragraph(f"Warning: these runs come from {len(machines)} different machines; speeds are not like for like.")
        )
    for index, machine in enumerate(machines.values(), 1):
        heading = "Machine:" if len(machines) == 1 else f"Machine {index}:"
        blocks += [Paragraph(heading), Table(["", ""], [list(pair) for pair in _machine_text(machine)])]

    settings = Table(["Group", "Threads", "Numerics", "Device"], [])
    for key, runs in groups.items():
        settings.rows.append([
            label(key),
            " / ".join(_distinct(_compact_json(run.get("threads")) for run in runs)),
            " / ".join(_distinct(_compact_json(run.get("numerics")) for run in runs)),
            " / ".join(_distinct(_compact_json(run.get("device_info")) for run in runs)),
        ])
    blocks += [Paragraph("Threads, numerics and device per group:"), settings]

    builds = []
    for run in records:
        info = run.get("mnist_bench") or {}
        git = info.get("git") or {}
        commit = f"git {str(git.get('commit', '?'))[:12]}{' (dirty)' if git.get('dirty') else ''}" if git else "git unknown"
        builds.append(f"{info.get('version', '?')}, {commit}")
    blocks.append(Paragraph("mnist-bench: " + "; ".join(_distinct(builds))))

    recipes = _distinct(json.dumps(run.get("recipe"), sort_keys=True) for run in records)
    if len(recipes) == 1:
        recipe = json.dumps(json.loads(recipes[0]), indent=1, sort_keys=True)
        blocks += [Paragraph("Recipe (shared by every run):"), Preformatted(recipe)]
    elif recipes:
        blocks.append(Paragraph(f"Warning: the runs used {len(recipes)} different recipes; results are not directly comparable."))
        blocks.append(Table(["Group", "Recipe"], [
            [label(key), " / ".join(_distinct(_compact_json(run.get("recipe")) for run in runs))] for key, runs in groups.items()
        ]))
    return blocks


def _failed_runs(records: list[dict], label) -> list[Block]:
    unfinished = [run for run in records if run["status"] != "ok"]
    if not unfinished:
        return [Paragraph("None: every run finished ok.")]
    table = Table(["Run", "Group", "Seed", "Status", "Error"], [], numeric={2}, bad_rows=set(range(len(unfinished))))
    blocks: list[Block] = [table]
    for run in unfinished:
        key = (run["backend"], run["mode"], device_group(run))
        table.rows.append([run["run_id"], label(key), str(run["seed"]), run["status"], error_text(run) or MISSING])
        tail = (run.get("error") or {}).get("tail")
        if tail:
            blocks += [Paragraph(f"Last output of {run['run_id']}:"), Preformatted(tail)]
    return blocks


def _runs_table(records: list[dict], label) -> list[Block]:
    headers = ["Run", "Group", "Seed", "Status", "Epochs", "Test accuracy", "Samples/s", "Others' CPU use", "Wall (s)"]
    table = Table(headers, [], numeric={2, 4, 5, 6, 7, 8})
    for index, (record, flat) in enumerate(zip(records, rows(records))):
        key = (record["backend"], record["mode"], device_group(record))
        table.rows.append([
            flat["run_id"], label(key), str(flat["seed"]), flat["status"], str(flat["epochs"]),
            _percent(flat["test_accuracy"]), _number(flat["steady_samples_per_s"]), load.load_text([record]),
            _number(flat["total_wall_s"]),
        ])
        if flat["status"] != "ok" or load.is_contended(record):
            table.bad_rows.add(index)
    return [table]


# --------------------------------------------------------------------------
# Side files: manifest.json and parity.json.


def _read_side_file(path: Path, strict: bool, warn: Warn) -> dict | None:
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        return document
    except (OSError, ValueError) as exc:
        message = f"{path}: unreadable ({exc})"
        if strict:
            raise RecordError(message) from None
        warn(f"skipped {message}")
        return None


def _parity_checks(document: dict | None, path: Path, strict: bool, warn: Warn) -> list[dict]:
    checks = (document or {}).get("checks", [])
    valid = [check for check in checks if isinstance(check, dict)] if isinstance(checks, list) else []
    if document is not None and len(valid) != (len(checks) if isinstance(checks, list) else -1):
        message = f"{path}: 'checks' must be a list of objects"
        if strict:
            raise RecordError(message)
        warn(f"partly skipped {message}")
    return valid


# --------------------------------------------------------------------------
# Rendering.


_MARKDOWN_SPECIAL = str.maketrans({char: "\\" + char for char in "\\|<>*`[]"})


def _md(text: str) -> str:
    """Plain text for a Markdown line or table cell: specials backslash-escaped, no line breaks."""
    return " ".join(str(text).splitlines()).translate(_MARKDOWN_SPECIAL)


def _render_markdown(title: str, intro: list[Block], sections: list[Section], plot_paths: dict[str, str]) -> str:
    lines = [f"# {_md(title)}", ""]

    def block_lines(block: Block) -> list[str]:
        if isinstance(block, Paragraph):
            return [f"**{_md(block.text)}**" if block.strong else _md(block.text), ""]
        if isinstance(block, Table):
            out = ["| " + " | ".join(_md(header) or " " for header in block.headers) + " |"]
            out.append("|" + "|".join("---:" if index in block.numeric else "---" for index in range(len(block.headers))) + "|")
            out += ["| " + " | ".join(_md(cell) for cell in cells) + " |" for cells in block.rows]
            return out + [""]
        if isinstance(block, Figure):
            return [f"![{_md(block.caption)}]({plot_paths[block.name]})", "", f"*{_md(block.caption)}*", ""]
        # A fence longer than any backtick run inside cannot be closed early by the text.
        longest = max((len(run) for run in re.findall("`+", block.text)), default=0)
        fence = "`" * max(3, longest + 1)
        return [fence, block.text, fence, ""]

    for block in intro:
        lines += block_lines(block)
    for section in sections:
        lines += [f"## {_md(section.title)}", ""]
        for block in section.blocks:
            lines += block_lines(block)
    return "\n".join(lines)


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1240px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:0 0 12px}h2{font-size:19px;margin:36px 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
nav{font-size:13px;margin-bottom:16px}nav a{margin-right:12px;color:#2456a6}
.headline{background:#eef4ff;border-left:4px solid #2456a6;padding:10px 14px;margin:12px 0}
.headline p{margin:4px 0}
table{border-collapse:collapse;margin:10px 0 14px;font-size:13px}
th,td{border:1px solid #dde1e7;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f0f2f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.bad td{background:#fdecec}
figure{margin:14px 0}figure img{max-width:100%;height:auto;border:1px solid #eceff3}
figcaption{font-size:13px;color:#555}
pre{background:#f4f5f7;padding:8px 10px;overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-word}
"""


def _render_html(title: str, intro: list[Block], sections: list[Section]) -> str:
    esc = html.escape

    def block_html(block: Block) -> str:
        if isinstance(block, Paragraph):
            text = esc(block.text)
            return f"<p><strong>{text}</strong></p>" if block.strong else f"<p>{text}</p>"
        if isinstance(block, Table):
            head = "".join(f"<th>{esc(header)}</th>" for header in block.headers)
            body = []
            for index, cells in enumerate(block.rows):
                row_class = ' class="bad"' if index in block.bad_rows else ""
                tds = "".join(
                    f'<td class="num">{esc(cell)}</td>' if column in block.numeric else f"<td>{esc(cell)}</td>"
                    for column, cell in enumerate(cells)
                )
                body.append(f"<tr{row_class}>{tds}</tr>")
            return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        if isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            return (
                f'<figure><img alt="{esc(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
        return f"<pre>{esc(block.text)}</pre>"

    nav = "".join(f'<a href="#{section.anchor}">{esc(section.title)}</a>' for section in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Belt and braces: even if escaping ever failed, the page may run no script and load nothing external.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{esc(title)}</h1>",
        f"<nav>{nav}</nav>",
        '<div class="headline">' + "".join(block_html(block) for block in intro) + "</div>",
    ]
    for section in sections:
        parts.append(f'<section id="{esc(section.anchor)}"><h2>{esc(section.title)}</h2>')
        parts += [block_html(block) for block in section.blocks]
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------
# Entry point.


def write_report(
    run_dirs: list[Path],
    out_dir: Path,
    *,
    title: str | None = None,
    strict: bool = False,
    warn: Warn | None = print,
    margin: float = DEFAULT_MARGIN,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` into ``out_dir``.

    ``run_dirs`` hold ``*.run.json`` records and optionally ``manifest.json``
    and ``parity.json``. With ``strict`` any unreadable file raises
    :class:`~mnist_bench.common.records.RecordError`; otherwise it is skipped, passed to
    ``warn`` and listed in the report. ``margin`` is the accuracy equivalence
    margin (a fraction: 0.005 is half a percentage point).

    Returns the written paths: ``markdown``, ``html`` and ``plot:<name>`` per plot.
    """
    out_dir = Path(out_dir)
    skipped: list[str] = []

    def note(message: str) -> None:
        skipped.append(message)
        if warn:
            warn(message)

    loaded: list[tuple[Path, list[dict]]] = []
    manifests: dict[Path, dict] = {}
    parity_checks: list[tuple[Path, dict]] = []
    for run_dir in map(Path, run_dirs):
        try:
            runs = read_dirs([run_dir], strict=strict, warn=note)
        except RecordError as exc:
            if strict:
                raise
            note(f"skipped {exc}")
            continue
        loaded.append((run_dir, runs))
        if (manifest := _read_side_file(run_dir / MANIFEST, strict, note)) is not None:
            manifests[run_dir] = manifest
        parity_path = run_dir / PARITY
        document = _read_side_file(parity_path, strict, note)
        parity_checks += [(run_dir, check) for check in _parity_checks(document, parity_path, strict, note)]

    records = [run for _, runs in loaded for run in runs]
    groups = group_runs(records)
    label = _labeller(groups)
    pairs = accuracy_parity(groups, margin)
    figures, plot_notes = _figures(groups, label, warn)

    title = title or "mnist-bench report"
    finished_at = _distinct(run["finished_at"] for run in records)
    intro = _headline(groups, label, pairs, margin, parity_checks, records)
    if finished_at:
        directories = "1 run directory" if len(loaded) == 1 else f"{len(loaded)} run directories"
        intro.append(Paragraph(f"{len(records)} runs in {directories}, finished {finished_at[0]} to {finished_at[-1]}."))
    sections = [
        Section("Summary", "summary", _summary(groups, label) if groups else [Paragraph("No readable run records.")]),
        *([Section("Scaling", "scaling", _scaling_section(found, label))] if (found := scaling(groups)) else []),
        Section("Plots", "plots", [*figures, *plot_notes]),
        Section("Accuracy parity", "accuracy-parity", _parity_section(pairs, label, margin)),
    ]
    if parity_checks:
        sections.append(Section("Numerical parity", "numerical-parity", _numerical_parity(parity_checks)))
    sections += [
        Section("Failed runs", "failed-runs", _failed_runs(records, label)),
        Section(
            "Environment",
            "environment",
            _environment(loaded, manifests, groups, label) if records else [Paragraph(MISSING)],
        ),
        Section("All runs", "all-runs", _runs_table(records, label)),
    ]
    if skipped:
        sections.append(Section("Skipped files", "skipped", [Preformatted("\n".join(skipped))]))

    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plot_paths: dict[str, str] = {}
    for figure in figures:
        path = out_dir / "plots" / f"{figure.name}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(figure.png)
        written[f"plot:{figure.name}"] = path
        plot_paths[figure.name] = f"plots/{figure.name}.png"
    written["markdown"] = out_dir / "report.md"
    written["markdown"].write_text(_render_markdown(title, intro, sections, plot_paths), encoding="utf-8")
    written["html"] = out_dir / "report.html"
    written["html"].write_text(_render_html(title, intro, sections), encoding="utf-8")
    return written
