"""The headline above every section: who is fastest, whether accuracy agrees, how quiet the machine was."""

from __future__ import annotations

import statistics
from pathlib import Path

from mnist_bench.bench.results import contended as load
from mnist_bench.bench.results.formatting import number, percent, points
from mnist_bench.bench.results.grouping import GroupKey, GroupLabeller, finished
from mnist_bench.bench.results.report.document import Block, Paragraph
from mnist_bench.bench.results.report.layers import layer_cost_paragraphs
from mnist_bench.bench.results.report.precisions import precision_paragraphs
from mnist_bench.bench.results.report.measures import AccuracyParity, final_accuracies, speed_ratio, throughput
from mnist_bench.bench.results.stats import CONFIDENCE

NAMED_PAIRS = 4  # pairs named per verdict in the headline; the rest are counted


def speed_sentence(groups: dict[GroupKey, list[dict]], label: GroupLabeller) -> str:
    speeds = sorted(
        ((value.median, key) for key, runs in groups.items() if (value := throughput(runs)) is not None), reverse=True
    )
    if not speeds:
        return "No run measured steady-state throughput"
    if len(speeds) == 1:
        return f"Only {label(speeds[0][1])} measured steady-state throughput: {number(speeds[0][0])} samples/s"
    fastest, key = speeds[0]
    others = ", ".join(f"{speed_ratio(groups[key], groups[other]).text()} {label(other)}" for _, other in speeds[1:])
    return (f"{label(key)} is fastest at {number(fastest)} samples/s (median steady state): {others} "
            f"(speed ratios with their {CONFIDENCE:.0%} intervals)")


def _pairs_named(pairs: list[AccuracyParity], label: GroupLabeller) -> str:
    names = "; ".join(
        f"{label(pair.a)} vs {label(pair.b)}"
        + (f" ({points(pair.interval.difference)})" if pair.interval else " (n too small)")
        for pair in pairs[:NAMED_PAIRS]
    )
    more = f" and {len(pairs) - NAMED_PAIRS} more" if len(pairs) > NAMED_PAIRS else ""
    return names + more


def accuracy_sentence(groups: dict[GroupKey, list[dict]], label: GroupLabeller, parity_pairs: list[AccuracyParity],
                      margin: float) -> str:
    margin_text = f"±{margin * 100:.2f} pp"
    if not parity_pairs:
        measured = [key for key, runs in groups.items() if final_accuracies(runs)]
        if not measured:
            return "no finished run reports test accuracy"
        mean = statistics.fmean(final_accuracies(groups[measured[0]]))
        return f"test accuracy {percent(mean)}; no second group to compare"
    agree = [pair for pair in parity_pairs if pair.verdict == "agree"]
    if len(agree) == len(parity_pairs):
        scope = "the only pair" if len(parity_pairs) == 1 else f"all {len(parity_pairs)} pairs"
        return f"accuracy agrees within {margin_text} for {scope}"
    sentence = f"accuracy agrees within {margin_text} for {len(agree)} of {len(parity_pairs)} pairs"
    for verdict in ("differ", "inconclusive"):
        pairs = [pair for pair in parity_pairs if pair.verdict.startswith(verdict)]
        if pairs:
            sentence += f"; {verdict}: {_pairs_named(pairs, label)}"
    return sentence


def machine_load_paragraph(records: list[dict]) -> Paragraph:
    done = finished(records)
    busy, unknown = load.contended(done), load.unmeasured(done)
    shares = [share for run in done if (share := load.other_share(run)) is not None]
    if busy:
        return Paragraph(
            f"{load.WARNING} {len(busy)} of {len(done)} finished runs were measured on a busy machine: other "
            f"processes used up to {max(shares) * 100:.0f} % of their CPUs while they trained. The speed figures "
            "rest on contended runs and are not figures of the frameworks; re-run them on a quiet machine "
            "(flagged rows below).", strong=True)
    if unknown:
        return Paragraph(f"{len(unknown)} of {len(done)} finished runs do not record their machine's load "
                         "(written before runs measured it): whether the machine was quiet is unknown.")
    if shares:
        return Paragraph(f"Quiet machine: other processes used at most {max(shares) * 100:.1f} % of a run's CPUs "
                         "while it trained.")
    return Paragraph("No finished run measured its machine's load.")


def run_status_paragraph(records: list[dict]) -> Paragraph:
    unfinished = [run for run in records if run["status"] != "ok"]
    if not records:
        return Paragraph("No readable run records.")
    if not unfinished:
        return Paragraph(f"All {len(records)} runs finished ok.")
    by_status = ", ".join(
        f"{sum(run['status'] == status for run in unfinished)} {status}"
        for status in sorted({run["status"] for run in unfinished})
    )
    return Paragraph(f"{len(unfinished)} of {len(records)} runs did not finish ok ({by_status}); see Failed runs.")


def unrecorded_paragraph(manifests: dict[Path, dict], records: list[dict]) -> Paragraph | None:
    """Runs a directory's manifest plans that have no record yet: the sweep is running, or stopped early."""
    recorded = {run["run_id"] for run in records}
    missing = {run_dir: [r for r in manifest.get("runs", []) if r not in recorded]
               for run_dir, manifest in manifests.items()}
    missing = {run_dir: runs for run_dir, runs in missing.items() if runs}
    if not missing:
        return None
    planned = sum(len(manifests[run_dir].get("runs", [])) for run_dir in missing)
    left = sum(map(len, missing.values()))
    resume = "; ".join(f"mnist-bench run --resume {run_dir} <same options>" for run_dir in missing)
    return Paragraph(f"{left} of {planned} planned runs have no record yet: this report covers what has finished. "
                     f"The sweep is still running, or it stopped early ({resume} completes it).", strong=True)


def numerical_parity_paragraph(parity_checks: list[tuple[Path, dict]]) -> Paragraph:
    failed = [check for _, check in parity_checks if check.get("passed") is not True]
    return Paragraph(
        f"Numerical parity: {len(parity_checks) - len(failed)} of {len(parity_checks)} checks passed"
        + (f"; {len(failed)} FAILED." if failed else ".")
    )


def headline_blocks(groups: dict[GroupKey, list[dict]], label: GroupLabeller, parity_pairs: list[AccuracyParity],
                    margin: float, parity_checks: list[tuple[Path, dict]], records: list[dict],
                    manifests: dict[Path, dict] | None = None) -> list[Block]:
    unrecorded = unrecorded_paragraph(manifests or {}, records)
    blocks: list[Block] = [
        *layer_cost_paragraphs(groups, label),
        *precision_paragraphs(groups, label),
        Paragraph(f"{speed_sentence(groups, label)}; {accuracy_sentence(groups, label, parity_pairs, margin)}.",
                  strong=True),
        *([unrecorded] if unrecorded else []),
        machine_load_paragraph(records),
        run_status_paragraph(records),
    ]
    if parity_checks:
        blocks.append(numerical_parity_paragraph(parity_checks))
    return blocks
