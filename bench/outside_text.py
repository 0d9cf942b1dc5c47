"""Text from outside (a record, a path, a recipe, an error message) made safe for where it is shown.

Such text is data: it must never become markup on a terminal, escape sequences
that move the cursor or retitle the window, or a formula in a spreadsheet.
Markdown and HTML reports escape it in :mod:`mnist_bench.bench.results.report`.
"""

from __future__ import annotations

import re

# C0 and C1 control characters except tab and newline: ESC starts terminal escape
# sequences, CR overwrites the line, BEL rings; shown as \xNN so the text stays readable.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def for_terminal(text: object) -> str:
    """``text`` with control characters shown as ``\\xNN``: safe to print."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def for_markup(text: object) -> str:
    """``text`` safe for a rich markup string: controls shown, ``[`` that could open a tag escaped."""
    from rich.markup import escape

    return escape(for_terminal(text))


def csv_cell(value: object) -> object:
    """A CSV cell no spreadsheet runs as a formula: text starting with = + - @ tab or CR gets a leading ``'``.

    Numbers stay numbers (a negative figure is a value, not a formula); only strings are changed.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
