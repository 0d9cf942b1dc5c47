"""The report's plots, drawn with matplotlib (imported inside functions, so importing the report stays cheap).

PNGs carry no software or date metadata: the same records give byte-identical plots.
"""

from __future__ import annotations

import io
import itertools
import statistics
from typing import Any, Callable

from mnist_bench.bench.results.grouping import GroupKey, GroupLabeller, finished
from mnist_bench.bench.results.report.document import Block, Figure, Paragraph
from mnist_bench.bench.results.report.measures import throughput

MISSING_MATPLOTLIB = "plots skipped: matplotlib is not installed (pip install 'mnist-bench[report]')"


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _colours(keys: list[GroupKey]) -> dict[GroupKey, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {key: palette(index % 10) for index, key in enumerate(keys)}


def throughput_figure(groups: dict[GroupKey, list[dict]], label: GroupLabeller, colours) -> Figure | None:
    measured = [(key, value) for key, runs in groups.items() if (value := throughput(runs)) is not None]
    if not measured:
        return None
    figure = new_figure(7.5, 0.5 * len(measured) + 1.4)
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
    return Figure("throughput", "Steady-state training throughput per group.", png(figure))


def _mean_by_epoch(runs: list[dict], value: Callable[[list[dict]], list[float]]) -> tuple[list[int], list[float]]:
    """Per epoch number, the mean over runs of ``value(run's epochs)[i]``."""
    by_epoch: dict[int, list[float]] = {}
    for run in finished(runs):
        epochs = run.get("epochs") or []
        for epoch, number in zip(epochs, value(epochs)):
            by_epoch.setdefault(epoch["epoch"], []).append(number)
    numbers = sorted(by_epoch)
    return numbers, [statistics.fmean(by_epoch[number]) for number in numbers]


def _elapsed_seconds(epochs: list[dict]) -> list[float]:
    # Prefer the harness's own clock; else add up epoch walls.
    if epochs and all("elapsed_s" in epoch for epoch in epochs):
        return [epoch["elapsed_s"] for epoch in epochs]
    return list(itertools.accumulate(epoch["wall_s"] for epoch in epochs))


def _accuracy_percent(epochs: list[dict]) -> list[float]:
    return [epoch["test_accuracy"] * 100 for epoch in epochs]


def _train_loss(epochs: list[dict]) -> list[float]:
    return [epoch["train_loss"] for epoch in epochs]


def epoch_figures(groups: dict[GroupKey, list[dict]], label: GroupLabeller, colours) -> list[Figure]:
    """Accuracy and loss per epoch, and accuracy against wall-clock time, each a mean over seeds."""
    with_epochs = {key: runs for key, runs in groups.items() if any(run.get("epochs") for run in finished(runs))}
    if not with_epochs:
        return []
    per_epoch = new_figure(11, 4)
    accuracy_axes, loss_axes = per_epoch.subplots(1, 2)
    timeline = new_figure(7.5, 4)
    timeline_axes = timeline.add_subplot()
    for key, runs in with_epochs.items():
        style = {"color": colours[key], "marker": "o", "label": label(key)}
        epochs, accuracy = _mean_by_epoch(runs, _accuracy_percent)
        accuracy_axes.plot(epochs, accuracy, **style)
        loss_axes.plot(*_mean_by_epoch(runs, _train_loss), **style)
        # Mean elapsed time and mean accuracy per epoch: one point per epoch.
        timeline_axes.plot(_mean_by_epoch(runs, _elapsed_seconds)[1], accuracy, **style)
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
        Figure("epochs", "Test accuracy and training loss per epoch, averaged over seeds.", png(per_epoch)),
        Figure(
            "wall_clock",
            "Test accuracy against elapsed wall-clock time "
            "(epochs[].elapsed_s, else the running sum of epochs[].wall_s).",
            png(timeline),
        ),
    ]


def _summed_confusions(records: list[dict]) -> tuple[dict[str, Any], dict[str, int]]:
    """Per backend, the sum of its finished runs' test confusion matrices, and how many were summed."""
    import numpy as np

    summed: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for run in finished(records):
        matrix = ((run.get("final") or {}).get("test") or {}).get("confusion")
        if not matrix:
            continue
        matrix = np.asarray(matrix, dtype=np.int64)
        previous = summed.get(run["backend"])
        if previous is not None and previous.shape != matrix.shape:
            continue  # a different class count cannot be summed; keep the first shape
        summed[run["backend"]] = matrix if previous is None else previous + matrix
        counts[run["backend"]] = counts.get(run["backend"], 0) + 1
    return summed, counts


def confusion_figure(records: list[dict]) -> Figure | None:
    import numpy as np

    summed, counts = _summed_confusions(records)
    if not summed:
        return None
    figure = new_figure(4.6 * len(summed), 4.6)
    for axes, (backend, matrix) in zip(np.atleast_1d(figure.subplots(1, len(summed))), sorted(summed.items())):
        recall = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
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
        png(figure),
    )


def plot_blocks(groups: dict[GroupKey, list[dict]], label: GroupLabeller,
                warn: Callable[[str], None] | None) -> list[Block]:
    """The plots, or a paragraph saying why there are none."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if warn:
            warn(MISSING_MATPLOTLIB)
        return [Paragraph(MISSING_MATPLOTLIB)]
    colours = _colours(list(groups))
    figures = [
        throughput_figure(groups, label, colours),
        *epoch_figures(groups, label, colours),
        confusion_figure([run for runs in groups.values() for run in runs]),
    ]
    figures = [figure for figure in figures if figure is not None]
    return figures or [Paragraph("No finished run, so nothing to plot.")]
