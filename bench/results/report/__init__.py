"""Turn run directories into one Markdown and one self-contained HTML report.

The report is built once as a document model (:mod:`.document`: sections of
paragraphs, tables, figures and preformatted text) and rendered through one Jinja2
template per format (:mod:`.render`), so the two formats cannot disagree and every
string taken from a record is escaped by its format's renderer. Records are
untrusted input: a backend's error message can hold anything, including markup.

Modules: :mod:`.side_files` reads the run directories, :mod:`.measures` computes
the per-group numbers (intervals from :mod:`mnist_bench.bench.results.stats`),
:mod:`.headline`, :mod:`.sections` and :mod:`.environment` build the sections,
:mod:`.plots` draws them, :mod:`.assemble` puts it all together.
"""

from mnist_bench.bench.results.grouping import GroupKey, group_runs
from mnist_bench.bench.results.report.assemble import build_report, write_report
from mnist_bench.bench.results.report.measures import (
    DEFAULT_MARGIN, AccuracyParity, Scaling, Throughput, accuracy_parity, parity_verdict, scaling, speed_ratio,
    throughput,
)
from mnist_bench.bench.results.stats import welch_interval

__all__ = [
    "DEFAULT_MARGIN", "AccuracyParity", "GroupKey", "Scaling", "Throughput", "accuracy_parity", "build_report",
    "group_runs", "parity_verdict", "scaling", "speed_ratio", "throughput", "welch_interval", "write_report",
]
