"""What a layer costs: Keras over the framework it runs on, Flax NNX over Linen (a spec's ``layer_over``).

The report's first lines answer it whenever both sides ran: the layer's default mode against the
implementation underneath in its default mode (what users of each write), and fastest against fastest
(the best each can do), on the same device group, as speed ratios paired by seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnist_bench.bench.results.grouping import GroupKey, GroupLabeller
from mnist_bench.bench.results.report.document import Paragraph
from mnist_bench.bench.results.report.measures import speed_ratio, throughput
from mnist_bench.bench.results.stats import CONFIDENCE, RatioInterval
from mnist_bench.common import registry


@dataclass(frozen=True)
class LayerCost:
    layer: str  # "Keras"
    over: GroupKey  # the layer's group
    under: GroupKey  # the implementation underneath, same role and device group
    role: str  # "default" or "fastest"
    ratio: RatioInterval  # over's speed / under's


def _spec(backend: str):
    try:
        return registry.spec(backend)
    except registry.UnknownBackend:  # a record of a plug-in that is not installed here
        return None


def layer_costs(groups: dict[GroupKey, list[dict]]) -> list[LayerCost]:
    costs: dict[tuple[GroupKey, GroupKey], LayerCost] = {}
    for key, runs in groups.items():
        backend, mode, device = key
        spec = _spec(backend)
        if spec is None or not spec.layer_over or throughput(runs) is None:
            continue
        for role, mode_of in registry.SELECTORS.items():
            if mode != mode_of(backend):
                continue
            under = (spec.layer_over, mode_of(spec.layer_over), device)
            if under in groups and throughput(groups[under]) is not None and (key, under) not in costs:
                costs[(key, under)] = LayerCost(spec.layer, key, under, role, speed_ratio(runs, groups[under]))
    return list(costs.values())


def _verdict(ratio: RatioInterval) -> str:
    """0.45x reads '2.22x slower'; a ratio whose interval holds 1, 'no difference measured'."""
    if ratio.low is not None and ratio.low <= 1 <= ratio.high:
        return "no difference measured"
    return f"{1 / ratio.ratio:.2f}x slower" if ratio.ratio < 1 else f"{ratio.ratio:.2f}x faster"


def layer_cost_paragraphs(groups: dict[GroupKey, list[dict]], label: GroupLabeller) -> list[Paragraph]:
    """One paragraph per layer (Keras, Flax NNX): each pair's speed ratio with its interval."""
    by_layer: dict[str, list[LayerCost]] = {}
    for cost in layer_costs(groups):
        by_layer.setdefault(cost.layer, []).append(cost)
    return [Paragraph(f"What {layer} costs, as its speed over the implementation underneath ({CONFIDENCE:.0%} "
                      "interval): " + "; ".join(f"{label(c.over)} over {label(c.under)} ({c.role} modes) "
                                                f"{c.ratio.text()}, {_verdict(c.ratio)}" for c in costs) + ".",
                      strong=True)
            for layer, costs in by_layer.items()]
