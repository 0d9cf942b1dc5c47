"""Rendering a :class:`ReportDocument` through one Jinja2 template per format (``templates/``).

Records are untrusted: a backend's error message can hold anything, including
markup. So every expression a template prints is escaped for its format unless
the template marks it otherwise: the HTML environment autoescapes
(``select_autoescape``), and the Markdown environment escapes every printed value
with :func:`markdown_text` except those a template passes through ``verbatim``
(fences, the text inside a fence, plot paths, and a macro's output, which escaped its own values).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import jinja2

from mnist_bench.bench.results.report.document import ReportDocument

_MARKDOWN_SPECIAL = str.maketrans({char: "\\" + char for char in "\\|<>*`[]"})


class Verbatim(str):
    """Markdown the template wrote itself: printed as it is."""


def markdown_text(text: Any) -> str:
    """Plain text for a Markdown line or table cell: specials backslash-escaped, no line breaks."""
    return " ".join(str(text).splitlines()).translate(_MARKDOWN_SPECIAL)


def _escape_unless_verbatim(value: Any) -> str:
    return value if isinstance(value, Verbatim) else markdown_text(value)


def markdown_fence(text: str) -> Verbatim:
    """A backtick fence longer than any backtick run inside ``text``, so the text cannot close it early."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    return Verbatim("`" * max(3, longest + 1))


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _environment(autoescape, finalize=None) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("mnist_bench.bench.results.report", "templates"),
        autoescape=autoescape,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(verbatim=Verbatim, fence=markdown_fence, data_uri=png_data_uri)
    return environment


def render_markdown(document: ReportDocument, plot_paths: dict[str, str]) -> str:
    """``report.md``; figures link to ``plot_paths[figure.name]`` (relative to the report)."""
    environment = _environment(autoescape=False, finalize=_escape_unless_verbatim)
    text = environment.get_template("report.md.j2").render(document=document, plot_paths=plot_paths)
    # Each block ends in a blank line; the file ends right after the last block's text.
    return text.removesuffix("\n")


def render_html(document: ReportDocument) -> str:
    """``report.html``: one self-contained page, plots inlined as data URIs."""
    environment = _environment(autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")))
    return environment.get_template("report.html.j2").render(document=document)
