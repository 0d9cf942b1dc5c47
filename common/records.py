"""Result records: one versioned JSON document per run, written atomically.

The schema lives beside this module in ``record.schema.json`` (JSON Schema
draft 2020-12) and is the contract between the harness, which writes records,
and the report, compare and CSV commands, which read them. Bump
``SCHEMA_VERSION`` on any incompatible change.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, Iterable

from mnist_bench.common import precision as numeric

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("record.schema.json")
STATUSES = ("ok", "failed", "timeout", "diverged", "interrupted")
RECORD_SUFFIX = ".run.json"


class RecordError(ValueError):
    """A file is not a valid mnist-bench run record."""


@cache
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(record: dict, source: str = "record") -> dict:
    """Raise :class:`RecordError` naming the first problem, else return ``record``."""
    import jsonschema  # a test-and-report dependency; kept out of worker start-up

    if not isinstance(record, dict):
        raise RecordError(f"{source}: not a JSON object")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(
            f"{source}: schema_version is {record.get('schema_version')!r}, this mnist-bench reads {SCHEMA_VERSION}"
        )
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(record))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise RecordError(f"{source}: invalid at {where}: {error.message}")
    bad = _non_finite(record)
    if bad:
        raise RecordError(f"{source}: invalid at {bad}: not a finite number (NaN or infinity); a record's "
                          "figures are measurements, and a run that diverged says so in its status")
    from mnist_bench.common import registry

    try:
        registry.canonical(record["backend"])
    except registry.UnknownBackend:
        raise RecordError(f"{source}: backend {record['backend']!r} is not a registered implementation "
                          f"({', '.join(registry.names())}); install the package that provides it") from None
    return record


def _non_finite(value, where: str = "") -> str | None:
    """The path of the first NaN or infinity in a record (JSON Schema's "number" accepts both), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(top level)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}/{key}" if where else str(key))
        if found:
            return found
    return None


def device_group(record: dict) -> str:
    """The device part of a record's group: ``cpu`` on one device in fp32, ``cpux2`` data-parallel on two,
    ``cpu-bf16`` in bfloat16.

    Runs on different device counts or in different precisions never share a group (their samples/s
    are different quantities, and a bf16 figure is not an fp32 one); old records without ``devices``
    ran on one, without ``precision`` in fp32.
    """
    devices = record.get("devices", 1)
    group = record["device"] if devices == 1 else f"{record['device']}x{devices}"
    precision = numeric.of(record)
    return group if precision == numeric.DEFAULT else f"{group}-{precision}"


def write_atomic(path: str | Path, document: Any) -> Path:
    """Write JSON to ``path`` via a temp file in the same folder and ``os.replace``.

    A reader sees the old file or the new one, never half of either.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=1, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path: str | Path) -> dict:
    """Read and validate one record file.

    A record written under an implementation's former name (``jax`` before it became
    ``flax-linen``) is read under its current name, so old and new runs group, report and
    compare together; ``backend_as_recorded`` keeps what the file says.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({exc})") from None
    return current_name(validate(document, str(path)))


def current_name(record: dict) -> dict:
    """``record`` under its implementation's current name (a copy where it was renamed)."""
    from mnist_bench.common import registry

    name = registry.canonical(record["backend"])
    return record if name == record["backend"] else {**record, "backend": name, "backend_as_recorded": record["backend"]}


def record_paths(run_dir: str | Path) -> list[Path]:
    return sorted(Path(run_dir).glob(f"*{RECORD_SUFFIX}"))


def read_dirs(run_dirs: Iterable[str | Path], *, strict: bool = True, warn=None) -> list[dict]:
    """All records under the given run directories.

    With ``strict`` a bad file raises :class:`RecordError`; otherwise it is
    skipped and ``warn(message)`` is called so the skip is visible.
    """
    records = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise RecordError(f"{run_dir}: not a directory of run records")
        paths = record_paths(run_dir)
        if not paths:
            raise RecordError(f"{run_dir}: holds no *{RECORD_SUFFIX} run records")
        for path in paths:
            try:
                records.append(read(path))
            except RecordError as exc:
                if strict:
                    raise
                if warn:
                    warn(f"skipped {exc}")
    return records
