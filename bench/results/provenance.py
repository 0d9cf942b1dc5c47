"""What must be the same on both sides of a comparison: the recipe, the threads and the versions that ran.

A slowdown or an accuracy drop between two result sets is evidence about the code
only when both trained the same recipe with the same threads, the same mnist-bench
and the same framework releases. Otherwise :func:`differences` names what differs, and
``compare`` refuses to judge unless told the difference is the point
(``--allow-different-recipes``): a framework developer comparing two releases says so.
Records the harness wrote for runs that never built their backend carry no framework
versions; they are left out of that check.
"""

from __future__ import annotations

import json
from typing import Callable, Iterable


def _reader(*path: str) -> Callable[[dict], object]:
    """A function reading ``record[path[0]][path[1]]...``, None where any step is missing."""
    def read(record: dict) -> object:
        value: object = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value
    return read


def _values(records: Iterable[dict], read: Callable[[dict], object]) -> set[str]:
    return {json.dumps(value, sort_keys=True) for value in map(read, records) if value is not None}


def _line(what: str, base: list[dict], new: list[dict], read: Callable[[dict], object]) -> list[str]:
    before, after = _values(base, read), _values(new, read)
    if not before or not after or before == after:
        return []
    return [f"{what}: base {' / '.join(sorted(before))}, new {' / '.join(sorted(after))}"]


def differences(base: list[dict], new: list[dict]) -> list[str]:
    """One line per recipe field, setting or version whose values differ between ``base`` and ``new``."""
    lines = []
    for field in sorted({key for record in (*base, *new) for key in record["recipe"]}):
        lines += _line(f"recipe.{field}", base, new, _reader("recipe", field))
    lines += _line("threads", base, new, _reader("threads", "requested"))
    lines += _line("mnist-bench version", base, new, _reader("mnist_bench", "version"))
    for backend in sorted({r["backend"] for r in base} & {r["backend"] for r in new}):
        sides = [r for r in base if r["backend"] == backend], [r for r in new if r["backend"] == backend]
        for package in sorted({name for side in sides for r in side for name in (r.get("versions") or {})}):
            lines += _line(f"{backend}: {package} version", *sides, _reader("versions", package))
    return lines
