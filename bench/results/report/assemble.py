"""From run directories to the written report: read, build the document, render it twice, write."""

from __future__ import annotations

from pathlib import Path

from mnist_bench.bench.results.grouping import group_labeller, group_runs
from mnist_bench.bench.results.report import environment, headline, plots, sections
from mnist_bench.bench.results.report.document import Paragraph, Preformatted, ReportDocument, Section
from mnist_bench.bench.results.report.measures import DEFAULT_MARGIN, accuracy_parity, scaling
from mnist_bench.bench.results.report.render import render_html, render_markdown
from mnist_bench.bench.results.report.side_files import LoadedRuns, Warn, load_run_dirs

DEFAULT_TITLE = "mnist-bench report"


def build_report(loaded: LoadedRuns, *, title: str, margin: float, skipped: list[str],
                 warn: Warn | None) -> ReportDocument:
    """The document for ``loaded``; ``skipped`` lists the files left out, shown in their own section."""
    records = loaded.records
    groups = group_runs(records)
    label = group_labeller(groups)
    pairs = accuracy_parity(groups, margin)
    plot_blocks = plots.plot_blocks(groups, label, warn)

    intro = headline.headline_blocks(groups, label, pairs, margin, loaded.parity_checks, records,
                                     loaded.manifests)
    if finished_at := sorted({run["finished_at"] for run in records}):
        count = len(loaded.runs_by_dir)
        directories = "1 run directory" if count == 1 else f"{count} run directories"
        intro.append(Paragraph(
            f"{len(records)} runs in {directories}, finished {finished_at[0]} to {finished_at[-1]}."))

    summary = sections.summary_blocks(groups, label) if groups else [Paragraph("No readable run records.")]
    parts = [Section("Summary", "summary", summary)]
    if found := scaling(groups):
        parts.append(Section("Scaling", "scaling", sections.scaling_blocks(found, label)))
    parts += [
        Section("Plots", "plots", plot_blocks),
        Section("Accuracy parity", "accuracy-parity", sections.accuracy_parity_blocks(pairs, label, margin)),
    ]
    if loaded.parity_checks:
        parts.append(Section("Numerical parity", "numerical-parity",
                             sections.numerical_parity_blocks(loaded.parity_checks)))
    parts += [
        Section("Failed runs", "failed-runs", sections.failed_run_blocks(records, label)),
        Section("Environment", "environment", environment.environment_blocks(loaded, groups, label)),
        Section("All runs", "all-runs", sections.all_runs_blocks(records, label)),
    ]
    if skipped:
        parts.append(Section("Skipped files", "skipped", [Preformatted("\n".join(skipped))]))
    return ReportDocument(title, intro, parts)


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
    skipped: list[str] = []

    def note(message: str) -> None:
        skipped.append(message)
        if warn:
            warn(message)

    loaded = load_run_dirs(run_dirs, strict, note)
    document = build_report(loaded, title=title or DEFAULT_TITLE, margin=margin, skipped=skipped, warn=warn)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plot_paths: dict[str, str] = {}
    for figure in document.figures:
        plot_paths[figure.name] = f"plots/{figure.name}.png"
        path = written[f"plot:{figure.name}"] = out_dir / plot_paths[figure.name]
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(figure.png)
    written["markdown"] = out_dir / "report.md"
    written["markdown"].write_text(render_markdown(document, plot_paths), encoding="utf-8")
    written["html"] = out_dir / "report.html"
    written["html"].write_text(render_html(document), encoding="utf-8")
    return written
