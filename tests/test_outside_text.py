"""Text from a record, a path or an error message is data on a terminal and in CSV (issue 17, finding 5).

Markdown and HTML escaping is tested in test_report.py (test_markup_in_any_record_field_is_escaped_in_both_formats).
"""

import csv
import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from mnist_bench.bench import cli
from mnist_bench.bench.outside_text import csv_cell, for_markup, for_terminal
from mnist_bench.bench.results.export import write_csv
from mnist_bench.bench.run import progress
from record_factory import make_record, write_run_dir

# Rich markup that does not balance (MarkupError), markup that would restyle, and a terminal escape sequence.
HOSTILE = "cannot open /tmp/[/red]x [bold]loud[/bold] [link=http://x]y \x1b]0;owned\x07\x1b[2J"


def failed_record(message: str = HOSTILE) -> dict:
    return make_record(status="failed", error={"type": "RuntimeError", "message": message})


def shown(text: str) -> str:
    """What the terminal shows of HOSTILE: the markup as typed, escape characters as \\xNN."""
    return text.replace("\x1b", "\\x1b").replace("\x07", "\\x07")


# The live display renders in a thread of its own: an exception there is only a warning unless made an error.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_rich_progress_shows_an_error_with_markup_as_text():
    """The sweep-stopping bug: finishing a run whose error held '[/red]' raised MarkupError in the display.

    A run finished without being started (one --resume keeps) also broke the live display's thread (KeyError).
    """
    out = io.StringIO()
    display = progress.RichDisplay(Console(file=out, force_terminal=True, width=400, color_system=None))
    spec = SimpleNamespace(run_id="torch-eager-cpu-s0", backend="torch", mode="eager", device="cpu", devices=1)
    display.start(spec, 0, 2)
    display.update(spec, {"event": "step", "epoch": 1, "epochs": 1, "step": 1, "steps": 2, "loss": 2.3,
                          "samples_per_s": 100.0})
    display.finish(spec, failed_record())
    display.finish(SimpleNamespace(run_id="[bold]odd[/bold]-s1", backend="[bold]odd[/bold]", mode="m", device="cpu", devices=1), failed_record("[/]"))  # never started
    display.note(HOSTILE)
    display.close()
    text = out.getvalue()
    assert "[/red]x [bold]loud[/bold] [link=http://x]y" in text
    assert "[bold]odd[/bold]-s1" in text and "FAILED: [/]" in text
    assert "\x1b]0;owned" not in text and "\\x1b]0;owned\\x07" in text


def test_plain_progress_shows_escape_sequences_as_text():
    out = io.StringIO()
    display = progress.PlainDisplay(out)
    display.finish(SimpleNamespace(run_id="torch-eager-cpu-s0", backend="torch", mode="eager", device="cpu", devices=1), failed_record())
    display.note("a note \x1b[2J")
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert shown(HOSTILE) in text and "a note \\x1b[2J" in text


def test_summary_table_shows_record_text_as_text(capsys):
    ok = make_record(mode="[bold]eager[/bold]", seed=1)
    cli.print_summary([failed_record(), ok])
    out, err = capsys.readouterr()
    assert ok["run_id"] in out and "failed" in out
    assert shown(HOSTILE) in err  # the error line, whole
    assert "\x1b" not in out + err


@pytest.mark.parametrize("text", ["[/red]", "[bold", "a [b]c[/b] \\[d]", "\x1b[31mred\x1b[0m", "\r\x00\x9b"])
def test_for_markup_round_trips_through_rich(text):
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(for_markup(text), end="")
    assert console.file.getvalue() == for_terminal(text)
    assert all(ch in "\n\t" or ch.isprintable() for ch in for_terminal(text))


@pytest.mark.parametrize("cell, expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("torch", "torch"), ("", ""), (-0.25, -0.25), (-3, -3), (None, None), (True, True),
])
def test_csv_cell(cell, expected):
    assert csv_cell(cell) == expected


def test_csv_export_neutralises_formulas_and_keeps_numbers(tmp_path):
    formula = failed_record('=cmd|" /C calc"!A0')
    dash = make_record(backend="flax-linen", seed=1, mode="-eager", contention={"other_share": -0.0})
    path = write_csv([write_run_dir(tmp_path, [formula, dash])], tmp_path / "runs.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = {row["backend"]: row for row in csv.DictReader(fh)}
    assert rows["torch"]["error"] == "RuntimeError: =cmd|\" /C calc\"!A0"  # starts with the type: already safe
    assert rows["flax-linen"]["mode"] == "'-eager"
    assert float(rows["flax-linen"]["test_accuracy"]) == 0.98  # numbers untouched
    assert rows["flax-linen"]["other_cpu_share"] == "-0.0"  # a negative number is written as one, not quoted
    formula_first = failed_record("x")
    formula_first["error"]["type"] = "=1+2"
    path = write_csv([write_run_dir(tmp_path, [formula_first], "second")], tmp_path / "second.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        assert next(csv.DictReader(fh))["error"] == "'=1+2: x"
