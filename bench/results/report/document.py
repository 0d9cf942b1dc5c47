"""The report as data: sections of paragraphs, tables, figures and preformatted text.

Section builders produce these from records; the templates render them, once as
Markdown and once as HTML, so the two formats cannot disagree. Every string in
here is plain text from records or builders: escaping is the renderer's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class Paragraph:
    kind: ClassVar[str] = "paragraph"
    text: str
    strong: bool = False


@dataclass
class Table:
    kind: ClassVar[str] = "table"
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # right-aligned column indices
    bad_rows: set[int] = field(default_factory=set)  # highlighted (failed runs, failed checks)


@dataclass
class Figure:
    kind: ClassVar[str] = "figure"
    name: str  # the plot's file stem: plots/<name>.png
    caption: str
    png: bytes


@dataclass
class Preformatted:
    kind: ClassVar[str] = "preformatted"
    text: str


Block = Paragraph | Table | Figure | Preformatted


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block]


@dataclass
class ReportDocument:
    """The whole report: a title, the headline blocks above every section, then the sections."""

    title: str
    headline: list[Block]
    sections: list[Section]

    @property
    def figures(self) -> list[Figure]:
        return [block for section in self.sections for block in section.blocks if isinstance(block, Figure)]
