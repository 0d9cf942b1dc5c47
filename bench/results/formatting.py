"""How numbers read in the report and the benchmark tables: one place, so the two never disagree.

Every function takes None for "not measured" and returns :data:`MISSING` for it.
"""

from __future__ import annotations

import math

MISSING = "—"


def number(value: float | None, digits: int = 3) -> str:
    """Three significant digits; thousands separators from 1,000 up."""
    if value is None:
        return MISSING
    if math.isinf(value):
        return "∞"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def percent(fraction: float | None, decimals: int = 2) -> str:
    """A fraction as ``98.42 %``."""
    return MISSING if fraction is None else f"{fraction * 100:.{decimals}f} %"


def points(fraction: float) -> str:
    """A difference of accuracies in signed percentage points: ``+0.12 pp``."""
    return f"{fraction * 100:+.2f} pp"


def byte_size(count: float | None) -> str:
    """``1.5 GiB``, ``12.0 MiB``, ``512 B``."""
    if count is None:
        return MISSING
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"
