"""What a lower precision buys in a sweep: each group run in bf16 (fp16, tf32) against the same backend, mode
and devices in fp32, speed as a ratio paired by seed (runs go seed-major, so a seed's precisions ran side by
side), test accuracy beside it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from mnist_bench.bench.results.grouping import GroupKey, GroupLabeller, finished
from mnist_bench.bench.results.report.document import Paragraph
from mnist_bench.bench.results.report.measures import final_accuracies, speed_ratio, throughput
from mnist_bench.bench.results.stats import CONFIDENCE, RatioInterval
from mnist_bench.common import precision as numeric
from mnist_bench.common.records import device_group


@dataclass(frozen=True)
class PrecisionGain:
    key: GroupKey  # the group in the lower precision
    base: GroupKey  # the same backend, mode and devices in fp32
    precision: str
    ratio: RatioInterval  # key's speed over base's
    accuracy: float | None  # median final test accuracy of key's runs
    base_accuracy: float | None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def precision_gains(groups: dict[GroupKey, list[dict]]) -> list[PrecisionGain]:
    gains = []
    for key, runs in groups.items():
        done = finished(runs)
        if not done or numeric.of(done[0]) == numeric.DEFAULT:
            continue
        base = (key[0], key[1], device_group({**done[0], "precision": numeric.DEFAULT}))
        if base in groups and throughput(runs) is not None and throughput(groups[base]) is not None:
            gains.append(PrecisionGain(key, base, numeric.of(done[0]), speed_ratio(runs, groups[base]),
                                       _median(final_accuracies(runs)), _median(final_accuracies(groups[base]))))
    return gains


def precision_paragraphs(groups: dict[GroupKey, list[dict]], label: GroupLabeller) -> list[Paragraph]:
    """One paragraph: each lower-precision group's speed over fp32, with its interval and both accuracies."""
    gains = precision_gains(groups)
    if not gains:
        return []

    def accuracy(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "n/a"

    return [Paragraph(f"What a lower precision buys, as speed over the same group in fp32 ({CONFIDENCE:.0%} interval; "
                      "test accuracy in brackets, that precision against fp32): "
                      + "; ".join(f"{label(g.key)} {g.ratio.text()} ({accuracy(g.accuracy)} against "
                                  f"{accuracy(g.base_accuracy)})" for g in gains) + ".", strong=True)]
