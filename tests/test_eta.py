"""The sweep's time-left estimate (bench/run/eta.py) and how the displays show it."""

import io
from types import SimpleNamespace

from mnist_bench.bench.run import eta, progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def spec(backend, mode="m", seed=0):
    return SimpleNamespace(backend=backend, mode=mode, device="cpu", devices=1, seed=seed,
                           run_id=f"{backend}-{mode}-cpu-s{seed}")


def ok(wall):
    return {"status": "ok", "timing": {"total_wall_s": wall, "steady_samples_per_s": 1.0},
            "final": {"test": {"accuracy": 0.9}}}


def step(epoch, step_, epochs=2, steps=100):
    return {"event": "step", "epoch": epoch, "step": step_, "epochs": epochs, "steps": steps, "loss": 1.0,
            "samples_per_s": 1.0}


def test_each_group_is_estimated_from_its_own_runs():
    clock = FakeClock()
    sweep = eta.SweepClock(clock)
    plan = [spec("slow", seed=0), spec("fast", seed=0), spec("slow", seed=1), spec("fast", seed=1)]
    sweep.plan(plan)
    assert sweep.left_s() == (None, False)  # nothing seen yet

    sweep.start(plan[0])
    clock.now = 10
    sweep.update(plan[0], step(1, 2))  # 1 % done: too early to project
    assert sweep.left_s() == (None, False)
    clock.now = 100
    sweep.update(plan[0], step(1, 50))  # a quarter done in 100 s: 400 s per slow run
    left, sure = sweep.left_s()
    assert not sure  # the fast group is not seen yet: guessed at the slow runs' pace
    assert left == 300 + 400 + 400 + 400

    clock.now = 400
    sweep.finish(plan[0], ok(400))
    sweep.start(plan[1])
    clock.now = 440
    sweep.finish(plan[1], ok(40))
    assert sweep.left_s() == (400 + 40, True)
    assert sweep.summary() == "2/4 runs done, about 7 min left"


def test_a_failed_run_does_not_set_its_groups_pace_and_kept_runs_count_as_done():
    clock = FakeClock()
    sweep = eta.SweepClock(clock)
    plan = [spec("a", seed=0), spec("a", seed=1), spec("a", seed=2)]
    sweep.plan(plan)
    sweep.finish(plan[0], ok(60), kept=True)  # --resume: its record's wall time is the group's pace
    sweep.start(plan[1])
    clock.now = 5
    sweep.finish(plan[1], {"status": "failed", "timing": None})  # died after 5 s: not a run's cost
    assert sweep.left_s() == (60, True)
    assert sweep.done == 2


def test_durations_read_as_people_write_them():
    assert eta.duration(42) == "42 s"
    assert eta.duration(25 * 60) == "25 min"
    assert eta.duration(72 * 60) == "1 h 12 min"


def test_the_plain_display_prints_the_sweeps_time_left_after_each_run():
    out = io.StringIO()
    display = progress.PlainDisplay(out)
    plan = [spec("a", seed=0), spec("a", seed=1)]
    display.plan(plan)
    display.start(plan[0], 0, 2)
    display.finish(plan[0], ok(90))
    assert "sweep: 1/2 runs done, about 2 min left" in out.getvalue()


def test_the_live_display_has_a_line_for_the_whole_sweep():
    from rich.console import Console

    out = io.StringIO()
    display = progress.RichDisplay(Console(file=out, force_terminal=True, width=200, color_system=None))
    plan = [spec("a", seed=0), spec("a", seed=1)]
    display.plan(plan)
    display.start(plan[0], 0, 2)
    display.finish(plan[0], ok(90))
    display.close()
    assert "1/2 runs done, about 2 min left" in out.getvalue()
