"""Flatten run records into one CSV row per run, for spreadsheets and pandas.

Every run appears, failed ones included (their result columns are empty and
``error`` says why), so a row count always equals the number of record files.
Text cells that a spreadsheet would run as a formula (an error message, a mode
name, a version string starting with ``=`` ``+`` ``-`` ``@``) get a leading ``'``;
numbers are written as numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, Iterable

from mnist_bench.bench.outside_text import csv_cell
from mnist_bench.common import precision as numeric
from mnist_bench.common.records import read_dirs

FIELDS = (
    "run_id",
    "status",
    "backend",
    "mode",
    "precision",
    "device",
    "devices",
    "seed",
    "epochs",
    "test_accuracy",
    "test_macro_f1",
    "steady_samples_per_s",
    "steady_samples_per_s_q1",
    "steady_samples_per_s_q3",
    "first_step_s",
    "eval_samples_per_s",
    "total_wall_s",
    "time_to_target_s",
    "peak_rss_bytes",
    "peak_device_bytes",
    "achieved_gflops",
    "other_cpu_share",
    "contended",
    "versions",
    "error",
)


def versions_text(versions: dict[str, str] | None) -> str:
    """``"torch 2.3.1, cuda 12.1"``: the record's package versions, empty ones left out."""
    return ", ".join(f"{name} {version}" for name, version in (versions or {}).items() if version)


def error_text(record: dict) -> str:
    """``"Type: message"`` for a run that did not finish ok, else ``""``."""
    error = record.get("error") or {}
    kind, message = error.get("type", ""), error.get("message", "")
    return f"{kind}: {message}" if kind and message else kind or message


def row(record: dict) -> dict[str, Any]:
    """One record as a flat dict keyed by :data:`FIELDS`; missing values are None."""
    timing = record.get("timing") or {}
    memory = record.get("memory") or {}
    test = (record.get("final") or {}).get("test") or {}
    return {
        "run_id": record["run_id"],
        "status": record["status"],
        "backend": record["backend"],
        "mode": record["mode"],
        "precision": numeric.of(record),
        "device": record["device"],
        "devices": record.get("devices"),
        "seed": record["seed"],
        "epochs": len(record.get("epochs") or []),
        "test_accuracy": test.get("accuracy"),
        "test_macro_f1": test.get("macro_f1"),
        "steady_samples_per_s": timing.get("steady_samples_per_s"),
        "steady_samples_per_s_q1": timing.get("steady_samples_per_s_q1"),
        "steady_samples_per_s_q3": timing.get("steady_samples_per_s_q3"),
        "first_step_s": timing.get("first_step_s"),
        "eval_samples_per_s": timing.get("eval_samples_per_s"),
        "total_wall_s": timing.get("total_wall_s"),
        "time_to_target_s": timing.get("time_to_target_s"),
        "peak_rss_bytes": memory.get("peak_rss_bytes"),
        "peak_device_bytes": memory.get("peak_device_bytes"),
        "achieved_gflops": (record.get("flops") or {}).get("achieved_gflops"),
        "other_cpu_share": (record.get("contention") or {}).get("other_share"),
        "contended": (record.get("contention") or {}).get("contended"),
        "versions": versions_text(record.get("versions")),
        "error": error_text(record),
    }


def rows(records: Iterable[dict]) -> list[dict[str, Any]]:
    """:func:`row` for each record, in the order given."""
    return [row(record) for record in records]


def write_csv(
    run_dirs: Iterable[str | Path],
    path: str | Path,
    *,
    strict: bool = False,
    warn: Callable[[str], None] | None = print,
) -> Path:
    """Write one CSV row per run record found under ``run_dirs``; return ``path``.

    Empty cells mean "not measured" (None). A corrupt record file raises with
    ``strict``, else it is skipped and reported through ``warn``.
    """
    path = Path(path)
    records = read_dirs(run_dirs, strict=strict, warn=warn)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({key: csv_cell(value) for key, value in r.items()} for r in rows(records))
    return path
