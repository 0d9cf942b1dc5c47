"""Progress displays for a sweep: live bars on a terminal, plain lines otherwise, or nothing.

Run ids, statuses and error messages are outside text (a plug-in names its backend and
modes, an exception its message): they are shown as data, never as rich markup or
terminal control sequences (:mod:`mnist_bench.bench.outside_text`). A ``[/red]`` in an
error message once stopped a sweep mid-way.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from mnist_bench.bench.outside_text import for_markup, for_terminal
from mnist_bench.bench.run.eta import SweepClock
from mnist_bench.common.contention import CONTENDED_SHARE


def _outcome(record: dict) -> str:
    """Plain text, controls shown; markup-escape it before rich sees it."""
    if record["status"] != "ok":
        return for_terminal(f"{record['status'].upper()}: {(record.get('error') or {}).get('message', '')}")
    final = record["final"]["test"]
    rate = record["timing"].get("steady_samples_per_s")
    rate_text = f"{rate:,.0f} samples/s" if rate else "no steady-state figure"
    return f"ok: test accuracy {final['accuracy']:.4f}, {rate_text}"


def _busy(event: dict) -> str:
    """A warning when other processes used the run's CPUs during the last chunk."""
    share = event.get("other_share")
    return f" (busy machine: others used {share:.0%} of its CPUs)" if share and share > CONTENDED_SHARE else ""


class PlainDisplay:
    """One line per epoch and per finished run (with the sweep's time left); a step line at most every
    ``every_s`` seconds."""

    def __init__(self, stream=None, every_s: float = 10.0) -> None:
        self.stream = stream or sys.stdout
        self.every_s = every_s
        self._last = 0.0
        self.clock = SweepClock()

    def plan(self, specs) -> None:
        self.clock.plan(specs)

    def _print(self, text: str) -> None:
        print(for_terminal(text), file=self.stream, flush=True)

    def note(self, text: str) -> None:
        self._print(text)

    def start(self, spec, index: int, total: int) -> None:
        self.clock.start(spec)
        self._print(f"[{index + 1}/{total}] {spec.run_id}: starting")

    def update(self, spec, event: dict) -> None:
        self.clock.update(spec, event)
        kind = event.get("event")
        if kind == "epoch":
            self._print(f"  {spec.run_id} epoch {event['epoch']}/{event['epochs']}: loss {event['train_loss']:.4f}, "
                        f"test accuracy {event['test_accuracy']:.4f}, {event['wall_s']:.1f} s")
        elif kind == "step" and time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self._print(f"  {spec.run_id} epoch {event['epoch']} step {event['step']}/{event['steps']}: "
                        f"loss {event['loss']:.4f}, {event['samples_per_s']:,.0f} samples/s{_busy(event)}")

    def finish(self, spec, record: dict, kept: bool = False) -> None:
        self.clock.finish(spec, record, kept)
        prefix = "kept (resume)" if kept else "done"
        self._print(f"  {spec.run_id} {prefix}: {_outcome(record)}")
        if not kept:
            self._print(f"sweep: {self.clock.summary()}")

    def close(self) -> None:
        pass


class QuietDisplay(PlainDisplay):
    def _print(self, text: str) -> None:
        pass


class RunTimeLeftColumn(TimeRemainingColumn):
    """Rich's time remaining for a run's bar; blank on the sweep's line, whose estimate is in its text."""

    def render(self, task) -> Text:
        return Text("") if task.fields.get("sweep") else super().render(task)


class RichDisplay:
    """A live bar per run (epoch, step, loss, samples/s and its time remaining) under a line for the
    whole sweep: runs done and the estimated time left (:mod:`.eta`)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("{task.fields[detail]}"), RunTimeLeftColumn(), console=self.console,
        )
        self.progress.start()
        self.tasks: dict[str, int] = {}
        self.clock = SweepClock()
        self.sweep = self.progress.add_task("sweep", total=None, detail="", visible=False, sweep=True)

    def plan(self, specs) -> None:
        self.clock.plan(specs)
        self.progress.update(self.sweep, total=len(specs), completed=0, visible=True,
                             detail=for_markup(self.clock.summary()))

    def _sweep_line(self) -> None:
        self.progress.update(self.sweep, completed=self.clock.done, detail=for_markup(self.clock.summary()))

    def note(self, text: str) -> None:
        self.console.print(for_terminal(text), markup=False, highlight=False)

    def start(self, spec, index: int, total: int) -> None:
        self.clock.start(spec)
        self.tasks[spec.run_id] = self.progress.add_task(for_markup(f"[{index + 1}/{total}] {spec.run_id}"), total=None,
                                                         detail="starting")

    def update(self, spec, event: dict) -> None:
        self.clock.update(spec, event)
        task = self.tasks.get(spec.run_id)
        if task is None or event.get("event") != "step":
            return
        self._sweep_line()
        epochs, steps = event["epochs"], event["steps"]
        self.progress.update(
            task, total=epochs * steps, completed=(event["epoch"] - 1) * steps + event["step"],
            detail=f"epoch {event['epoch']}/{epochs} loss {event['loss']:.3f} {event['samples_per_s']:,.0f}/s{_busy(event)}",
        )

    def finish(self, spec, record: dict, kept: bool = False) -> None:
        task = self.tasks.get(spec.run_id)
        if task is None:
            task = self.tasks[spec.run_id] = self.progress.add_task(for_markup(spec.run_id), total=1, detail="")
        self.progress.update(task, completed=self.progress.tasks[task].total or 1,
                             detail=for_markup(("kept: " if kept else "") + _outcome(record)))
        self.clock.finish(spec, record, kept)
        self._sweep_line()

    def close(self) -> None:
        self.progress.stop()


def make_display(quiet: bool):
    if quiet:
        return QuietDisplay()
    return RichDisplay() if sys.stdout.isatty() else PlainDisplay()
