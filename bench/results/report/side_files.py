"""Reading what the report is built from: each run directory's records and its side files.

A run directory holds ``*.run.json`` records and optionally ``manifest.json`` (the
sweep's command) and ``parity.json`` (numerical parity checks). A file that cannot
be read raises :class:`~mnist_bench.common.records.RecordError` when ``strict``;
otherwise it is skipped and the reason passed to ``note``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from mnist_bench.common.records import RecordError, read_dirs

MANIFEST = "manifest.json"
PARITY = "parity.json"

Warn = Callable[[str], None]


@dataclass
class LoadedRuns:
    """Everything read from the run directories, in the order given."""

    runs_by_dir: list[tuple[Path, list[dict]]] = field(default_factory=list)
    manifests: dict[Path, dict] = field(default_factory=dict)
    parity_checks: list[tuple[Path, dict]] = field(default_factory=list)

    @property
    def records(self) -> list[dict]:
        return [run for _, runs in self.runs_by_dir for run in runs]


def read_side_file(path: Path, strict: bool, note: Warn) -> dict | None:
    """The JSON object in ``path``, or None when there is no such file (or, not strict, it is unreadable)."""
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
        note(f"skipped {message}")
        return None


def parity_checks(document: dict | None, path: Path, strict: bool, note: Warn) -> list[dict]:
    """The objects in ``parity.json``'s ``checks`` list; anything else in it is skipped (or raises, strict)."""
    checks = (document or {}).get("checks", [])
    valid = [check for check in checks if isinstance(check, dict)] if isinstance(checks, list) else []
    if document is not None and len(valid) != (len(checks) if isinstance(checks, list) else -1):
        message = f"{path}: 'checks' must be a list of objects"
        if strict:
            raise RecordError(message)
        note(f"partly skipped {message}")
    return valid


def load_run_dirs(run_dirs: Iterable[Path], strict: bool, note: Warn) -> LoadedRuns:
    """Records, manifests and parity checks of every readable run directory."""
    loaded = LoadedRuns()
    for run_dir in map(Path, run_dirs):
        try:
            runs = read_dirs([run_dir], strict=strict, warn=note)
        except RecordError as exc:
            if strict:
                raise
            note(f"skipped {exc}")
            continue
        loaded.runs_by_dir.append((run_dir, runs))
        if (manifest := read_side_file(run_dir / MANIFEST, strict, note)) is not None:
            loaded.manifests[run_dir] = manifest
        parity_path = run_dir / PARITY
        document = read_side_file(parity_path, strict, note)
        loaded.parity_checks += [(run_dir, check) for check in parity_checks(document, parity_path, strict, note)]
    return loaded
