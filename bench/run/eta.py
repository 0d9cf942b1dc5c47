"""How long a sweep has left: the estimate every progress display shows.

Runs of one group (backend, mode, device, devices) cost about the same, and groups differ by
up to 10x (idiomatic JAX against TensorFlow on a CPU), so a run is estimated from its own group:
a finished run's wall time, else the running run's pace. A group not yet seen is estimated at the
mean of the groups seen so far, and the estimate says so ("at least" would be a guess too): a
sweep runs seed-major, so after the first round of seeds every group has been seen.
"""

from __future__ import annotations

import time
from statistics import mean

# The running run's pace is read only once this share of its steps is done: before that its
# first step (compilation) dominates and the projection can be off by an order of magnitude.
MIN_FRACTION = 0.05


def group_of(spec) -> tuple:
    return (spec.backend, spec.mode, spec.device, spec.devices)


def run_wall_s(record: dict) -> float | None:
    """A finished run's wall time, from its record (None if it never got as far as timing itself)."""
    return (record.get("timing") or {}).get("total_wall_s")


class SweepClock:
    """Fed the display's events; :meth:`left_s` is the estimated seconds until the sweep ends."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.walls: dict[tuple, list[float]] = {}
        self.pending: dict[tuple, int] = {}  # group -> runs not started yet
        self.total = self.done = 0
        self.current: tuple | None = None  # (group, started, fraction done)

    def plan(self, specs) -> None:
        """Every run of the sweep, before the first starts."""
        self.total = len(specs)
        for spec in specs:
            self.pending[group_of(spec)] = self.pending.get(group_of(spec), 0) + 1

    def start(self, spec) -> None:
        group = group_of(spec)
        self.pending[group] = max(0, self.pending.get(group, 0) - 1)
        self.current = (group, self.clock(), 0.0)

    def update(self, spec, event: dict) -> None:
        if self.current and event.get("event") == "step" and event.get("epochs") and event.get("steps"):
            done = (event["epoch"] - 1) * event["steps"] + event["step"]
            self.current = (self.current[0], self.current[1], done / (event["epochs"] * event["steps"]))

    def finish(self, spec, record: dict, kept: bool = False) -> None:
        group = group_of(spec)
        if kept:  # a kept run (--resume) was never started here
            self.pending[group] = max(0, self.pending.get(group, 0) - 1)
        wall = run_wall_s(record)
        if wall is None and not kept and self.current and self.current[0] == group:
            wall = self.clock() - self.current[1]
        if wall is not None and record.get("status") == "ok":
            self.walls.setdefault(group, []).append(wall)
        self.done += 1
        self.current = None

    def _per_run(self) -> dict[tuple, float]:
        """Expected wall seconds of one run, for each group seen (finished, or running long enough)."""
        known = {group: mean(walls) for group, walls in self.walls.items()}
        if self.current and self.current[0] not in known and self.current[2] >= MIN_FRACTION:
            known[self.current[0]] = (self.clock() - self.current[1]) / self.current[2]
        return known

    def left_s(self) -> tuple[float | None, bool]:
        """(seconds left, whether every group left has been seen); None before anything can be said."""
        known = self._per_run()
        left, guessed = 0.0, False
        if self.current:
            group, started, fraction = self.current
            if group not in known:
                return None, False
            left += max(0.0, known[group] - (self.clock() - started))
        for group, count in self.pending.items():
            if not count:
                continue
            if group not in known:
                if not known:
                    return None, False
                guessed = True
            left += count * known.get(group, mean(known.values()))
        return left, not guessed

    def summary(self) -> str:
        """e.g. '3/21 runs done, about 1 h 12 min left'."""
        left, sure = self.left_s()
        head = f"{self.done}/{self.total} runs done"
        if left is None:
            return head if self.done == self.total else f"{head}, time left not known yet"
        if self.done == self.total:
            return head
        return f"{head}, about {duration(left)} left" + ("" if sure else " (runs of groups not yet seen guessed)")


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
