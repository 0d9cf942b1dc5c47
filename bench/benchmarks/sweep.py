"""What a benchmark run says across batch sizes and precisions: where each backend stops scaling, and what
a reduced precision buys over fp32.

Both read the benchmarks' ``extra_info`` (one dict per benchmark, tagged with its ``pass``) and nothing
else; the plot is drawn with matplotlib, imported inside :func:`plot`. Plain Python otherwise.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from mnist_bench.bench.results import formatting, stats
from mnist_bench.common import precision as numeric

# Doubling the batch must gain at least this much throughput to count as still scaling.
SCALING_GAIN = 0.10
PLOT_FILE = "batch-sweep.png"

Curve = tuple[str, str, str, str]  # (step, backend, mode, precision)


def _median_rates(infos: list[dict]) -> dict[Curve, dict[int, float]]:
    """Median samples/s over passes, per curve and batch size."""
    rates: dict[Curve, dict[int, list[float]]] = {}
    for info in infos:
        if info.get("samples_per_s"):
            curve = (info["step"], info["backend"], info["mode"], info.get("precision", numeric.DEFAULT))
            rates.setdefault(curve, {}).setdefault(info["batch_size"], []).append(info["samples_per_s"])
    return {curve: {batch: statistics.median(values) for batch, values in sorted(by_batch.items())}
            for curve, by_batch in sorted(rates.items())}


def stops_scaling(rates: dict[int, float]) -> int | None:
    """The batch size after which the next one measured gains less than :data:`SCALING_GAIN`; None while it
    still gains at the largest (or with one batch size: nothing to tell)."""
    sizes = sorted(rates)
    for small, large in zip(sizes, sizes[1:]):
        if rates[large] < (1 + SCALING_GAIN) * rates[small]:
            return small
    return None


def scaling_lines(infos: list[dict]) -> list[str]:
    """A Markdown table: each curve's samples/s per batch size and where it stops scaling."""
    curves = {curve: rates for curve, rates in _median_rates(infos).items() if len(rates) > 1}
    if not curves:
        return []
    sizes = sorted({size for rates in curves.values() for size in rates})
    lines = ["### Batch sweep", "",
             f"Samples/s (median over passes) per batch size. \"Stops scaling\" names the batch size after which "
             f"the next one measured gains less than {SCALING_GAIN:.0%}.", "",
             "| step | backend | mode | precision | " + " | ".join(f"b{size}" for size in sizes) + " | stops scaling |",
             "|---|---|---|---|" + "---:|" * len(sizes) + "---|"]
    for (step, backend, mode, precision), rates in curves.items():
        stop = stops_scaling(rates)
        cells = " | ".join(formatting.number(rates.get(size)) for size in sizes)
        verdict = f"after batch {stop}" if stop is not None else f"still scaling at {max(rates)}"
        lines.append(f"| {step} | {backend} | {mode} | {precision} | {cells} | {verdict} |")
    return lines + [""]


@dataclass(frozen=True)
class PrecisionGain:
    step: str
    batch_size: int
    backend: str
    mode: str
    precision: str
    ratio: stats.RatioInterval  # this precision's samples/s over fp32's


def precision_gains(infos: list[dict]) -> list[PrecisionGain]:
    """Every (step, batch, backend, mode) measured in fp32 and another precision: that one over fp32, paired by pass."""
    by_key: dict[tuple, dict[str, dict[int, float]]] = {}
    for info in infos:
        if info.get("samples_per_s"):
            key = (info["step"], info["batch_size"], info["backend"], info["mode"])
            precision = info.get("precision", numeric.DEFAULT)
            by_key.setdefault(key, {}).setdefault(precision, {})[info.get("pass", 1)] = info["samples_per_s"]
    gains = []
    for (step, batch, backend, mode), by_precision in sorted(by_key.items()):
        base = by_precision.get(numeric.DEFAULT)
        for precision, rates in sorted(by_precision.items()):
            if base is None or precision == numeric.DEFAULT:
                continue
            shared = sorted(base.keys() & rates.keys())
            if len(shared) >= 2:
                ratio = stats.paired_ratio([rates[k] for k in shared], [base[k] for k in shared])
            else:
                ratio = stats.independent_ratio(list(rates.values()), list(base.values()))
            gains.append(PrecisionGain(step, batch, backend, mode, precision, ratio))
    return gains


def precision_lines(infos: list[dict]) -> list[str]:
    gains = precision_gains(infos)
    if not gains:
        return []
    lines = ["### What a lower precision buys", "",
             "Samples/s in the precision over samples/s in fp32, same backend, mode, step and batch size; with "
             "several passes, paired by pass (geometric mean, 95 % interval).", "",
             "| step | batch | backend | mode | precision | over fp32 |", "|---|---:|---|---|---|---|"]
    for g in gains:
        lines.append(f"| {g.step} | {g.batch_size} | {g.backend} | {g.mode} | {g.precision} | {g.ratio.text()} |")
    return lines + [""]


def plot(infos: list[dict], path) -> bool:
    """samples/s against batch size, one panel per step kind, one line per backend/mode/precision; False when
    fewer than two batch sizes were measured (nothing to draw)."""
    curves = {curve: rates for curve, rates in _median_rates(infos).items() if len(rates) > 1}
    if not curves:
        return False
    from matplotlib import colormaps

    from mnist_bench.bench.results.report.plots import new_figure, png

    steps = sorted({curve[0] for curve in curves}, key=lambda step: step != "train")
    figure = new_figure(6.0 * len(steps), 4.2)
    axes = figure.subplots(1, len(steps), squeeze=False)[0]
    lines = sorted({curve[1:] for curve in curves})
    palette = colormaps["tab10"]
    colours = {line[:2]: palette(index % 10) for index, line in enumerate(sorted({line[:2] for line in lines}))}
    for ax, step in zip(axes, steps):
        for backend, mode, precision in lines:
            rates = curves.get((step, backend, mode, precision))
            if rates:
                ax.plot(list(rates), list(rates.values()), marker="o", color=colours[(backend, mode)],
                        linestyle="-" if precision == numeric.DEFAULT else "--",
                        label=f"{backend}/{mode}" + ("" if precision == numeric.DEFAULT else f" {precision}"))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("samples/s (median over passes)")
        ax.set_title(f"{step} step")
        ax.legend(fontsize=7)
    path.write_bytes(png(figure))
    return True
