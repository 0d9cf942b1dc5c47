"""The pytest-benchmark suite (bench/benchmarks), run for real in subprocesses as pytest-benchmark tests itself.

One quick run of the driver covers every backend and every mode the registry lists
(batch 64, 2 timed rounds after 1 warm-up, 2 steps a round), so the suite cannot rot
unnoticed; one compare run proves that ``--compare`` fails on a regression and only
on one. Speeds are not asserted beyond being positive and self-consistent: what they
are belongs to the recorded results, not to a test.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_bench.bench.results import stats
from mnist_bench.bench.benchmarks import driver, suite, summary
from mnist_bench.common import registry

REPO_ROOT = Path(__file__).resolve().parent.parent
QUICK_TIMEOUT_S = 900
QUIET_WAIT_KEYS = {"other_share", "threshold", "quiet", "waited_s", "cpus", "required", "max_wait_s", "if_busy",
                   "pass", "passes"}
# torch eager and tuned, batch 64, 2 rounds of 2 steps, 1 thread: about 15 s a pass on the 2-core dev VM.
SMALL_RUN = ("--quick", "--backends", "torch", "--modes", "eager,tuned", "--threads", "1", "--no-peak-probe")
SMALL_TIMEOUT_S = 300


def _driver(*args: str, timeout: float = QUICK_TIMEOUT_S) -> subprocess.CompletedProcess:
    from mnist_bench.bench.run.process import child_env

    return subprocess.run([sys.executable, "-m", "mnist_bench.bench.benchmarks", *args], cwd=REPO_ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, shared_data_dir):
    out = tmp_path_factory.mktemp("benchmarks") / "run"
    # A short quiet-wait: this run proves the suite works, not that the machine is quiet.
    proc = _driver("--quick", "--modes", QUICK_MODES, "--quiet-wait", "10", "--out", str(out),
                   "--data-dir", str(shared_data_dir))
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return out, proc


def _check_contention(block: dict, rounds: int) -> None:
    """A benchmark's machine record: one interval per timed round, shares of the pinned CPUs."""
    assert block["version"] == 1 and block["cpus"] and block["threshold"] == 0.05
    # A round shorter than the kernel's clock tick (10 ms) moves no /proc/stat counter and gives no
    # interval, hence "at most"; quick rounds of a fast backend can all be that short: nothing measured.
    assert 0 <= block["intervals"] <= rounds
    if block["intervals"] == 0:
        assert block["other_share"] is None and block["contended"] is None
        return
    assert 0.0 <= block["other_share"] <= 1.0 and block["own_share"] > 0
    assert block["contended"] == (block["other_share"] > block["threshold"])


# Each backend's default and fastest modes, and "compiled" for torch's known-broken one (reported untimed): the
# suite times every mode through the same code and the parity tests prove every mode trains; all 25 modes
# would double this run's time for no failure these miss.
QUICK_MODES = "default,fastest,compiled"


def _modes(backend: str) -> tuple[str, ...]:
    return registry.select_modes(backend, QUICK_MODES)


def _expected_cases() -> list[tuple[str, str, str]]:
    return [(backend, mode, step) for backend in registry.default_names() for mode in _modes(backend)
            for step in suite.STEP_KINDS]


@pytest.mark.quiet  # each benchmark process first waits for its CPUs to be quiet
@pytest.mark.timeout(QUICK_TIMEOUT_S)
def test_quick_run_times_every_backend_and_mode(quick_run):
    out, proc = quick_run
    peak = json.loads((out / summary.PEAK_FILE).read_text())
    assert peak["gflops"] > 0 and peak["source"] == "numpy"
    results = summary.load_run(out)
    assert set(results) == set(registry.default_names())
    for backend, document in results.items():
        timed = {(b["extra_info"]["mode"], b["extra_info"]["step"]): b for b in document["benchmarks"]}
        assert QUIET_WAIT_KEYS <= set(document["mnist_bench"]["quiet_wait"])
        outcomes = {o["test"].split("::")[-1]: o for o in document["mnist_bench"]["outcomes"]}
        for mode in _modes(backend):
            broken = suite.known_broken(backend, mode, "cpu")
            for step in suite.STEP_KINDS:
                test_id = f"test_{step}_step[{backend}-{mode}-b64]"
                if broken:
                    # Reported, with the registry's reason, and not timed.
                    assert (mode, step) not in timed
                    assert outcomes[test_id]["outcome"] == "skipped"
                    assert broken in outcomes[test_id]["reason"]
                    continue
                assert outcomes[test_id]["outcome"] == "passed", outcomes[test_id]
                bench = timed[(mode, step)]
                info = bench["extra_info"]
                assert set(suite.EXTRA_INFO_KEYS) <= set(info), set(suite.EXTRA_INFO_KEYS) - set(info)
                assert bench["group"] == suite.group_name(step, 64)
                assert bench["stats"]["rounds"] == 2 and bench["stats"]["iterations"] == 1
                assert (info["backend"], info["device"], info["batch_size"]) == (backend, "cpu", 64)
                assert info["samples_per_round"] == info["steps_per_round"] * 64 == 128
                # samples/s follows from the recorded median round time, GFLOP/s from the FLOP count.
                assert info["samples_per_s"] > 0
                assert math.isclose(info["samples_per_s"], 128 / bench["stats"]["median"], rel_tol=1e-9)
                assert info["flops_per_sample"] == suite.flops_per_sample(step, suite.recipe_for(64))
                assert math.isclose(info["gflops"], info["samples_per_s"] * info["flops_per_sample"] / 1e9)
                # Fraction of the peak measured in the same run (NumPy's, since the device is the CPU).
                assert info["peak_source"] == "numpy" and info["peak_gflops"] == peak["gflops"]
                assert math.isclose(info["fraction_of_peak"], info["gflops"] / peak["gflops"])
                assert info["framework_matmul_gflops"] > 0
                assert info["versions"]["numpy"] and any(pkg in info["versions"] for pkg in registry.spec(backend).requires)
                assert info["threads"]["requested"] >= 1
                _check_contention(info["contention"], rounds=2)
        assert len(timed) == sum(not suite.known_broken(backend, m, "cpu") for m in _modes(backend)) * 2
    # The side-by-side table names every timed case and every untimed one.
    table = (out / summary.SUMMARY_FILE).read_text()
    for backend, mode, step in _expected_cases():
        assert f"{backend}-{mode}-b64" in table or f"| {backend} | {mode} |" in table
    assert "### train step, batch 64" in table and "### eval step, batch 64" in table
    assert "### train step, batch 64" in proc.stdout


@pytest.mark.quiet  # each benchmark process first waits for its CPUs to be quiet
@pytest.mark.timeout(QUICK_TIMEOUT_S)
def test_compare_fails_on_a_regression_and_only_there(quick_run, tmp_path, shared_data_dir):
    """Against a saved run whose train step was 10x slower and eval step 10x faster, only eval regresses."""
    out, _ = quick_run
    document = json.loads((out / "torch.json").read_text())
    for bench in document["benchmarks"]:
        factor = 10.0 if bench["extra_info"]["step"] == "train" else 0.1
        for field in ("min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr"):
            bench["stats"][field] *= factor
    base = tmp_path / "base"
    base.mkdir()
    (base / "torch.json").write_text(json.dumps(document))
    proc = _driver("--quick", "--quiet-wait", "10", "--backends", "torch", "--modes", "eager", "--no-peak-probe",
                   "--compare", str(base), "--compare-fail", "median:10%", "--out", str(tmp_path / "new"),
                   "--data-dir", str(shared_data_dir))
    assert proc.returncode == driver.EXIT_FAILED, proc.stdout + proc.stderr
    assert "REGRESSED" in proc.stderr
    failures = [line for line in proc.stderr.splitlines() if "has failed" in line]
    assert any("test_eval_step[torch-eager-b64]" in line for line in failures), proc.stderr
    assert not any("test_train_step" in line for line in failures), proc.stderr
    assert "Comparing against benchmarks from" in (tmp_path / "new" / "torch.log").read_text()


# --- input checks, without running a framework ---------------------------------------------


def test_driver_refuses_bad_input_before_running(tmp_path, capsys, replace_spec):
    assert driver.main(["--backends", "nope", "--out", str(tmp_path / "a")]) == driver.EXIT_USAGE
    assert "unknown backend 'nope'" in capsys.readouterr().err
    assert driver.main(["--modes", "warp", "--out", str(tmp_path / "b")]) == driver.EXIT_USAGE
    assert "unknown mode(s) 'warp'" in capsys.readouterr().err
    assert driver.main(["--compare", str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == driver.EXIT_USAGE
    assert "nothing to compare with" in capsys.readouterr().err
    assert driver.main(["--compare-fail", "median:5%", "--out", str(tmp_path / "d")]) == driver.EXIT_USAGE
    assert "needs --compare" in capsys.readouterr().err
    # A backend that is not installed is a failure naming the fix, never a silent skip.
    replace_spec("flax-linen", requires=("no_such_package_mnist_bench",))
    assert driver.main(["--backends", "flax-linen", "--out", str(tmp_path / "e")]) == driver.EXIT_USAGE
    err = capsys.readouterr().err
    assert "no_such_package_mnist_bench" in err and ".[jax]" in err
    assert not any((tmp_path / name).exists() for name in "abcde")  # nothing ran, nothing written
    assert driver.main(["--backends", "torch", "--repeat", "0", "--out", str(tmp_path / "f")]) == driver.EXIT_USAGE
    assert "--repeat must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_suite_without_a_backend_is_a_usage_error():
    from mnist_bench.bench.run.process import child_env

    proc = subprocess.run([sys.executable, "-m", "pytest", "bench/benchmarks", "-p", "no:cacheprovider"],
                          cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--mnist-backend" in proc.stderr and "python -m mnist_bench.bench.benchmarks" in proc.stderr


def test_modes_come_from_the_registry(replace_spec):
    # A mode added to a spec (say "warp") is benchmarked with no change to the suite.
    replace_spec("torch", modes=(*registry.modes("torch"), "warp"))
    assert suite.select_modes("torch", "all")[-1] == "warp"
    assert suite.select_modes("torch", "warp") == ("warp",)
    assert suite.select_modes("flax-linen", "warp") == ()  # flax-linen has no such mode: left out, and the driver says so
    assert suite.select_modes("tensorflow", "default") == (registry.default_mode("tensorflow"),)
    assert suite.select_modes("flax-linen", "tuned,default") == ("compiled", "tuned")
    with pytest.raises(suite.SuiteError, match="unknown mode"):
        suite.select_modes("torch", "eager,hyper")


def test_round_sizes_and_flops():
    assert suite.steps_per_round(64) == 20  # the harness's chunk
    assert suite.steps_per_round(512) == 3
    assert suite.steps_per_round(4096) == 1
    assert suite.steps_per_round(512, chunk_steps=7) == 7
    recipe = suite.recipe_for(512)
    assert (recipe.batch_size, recipe.eval_batch_size) == (512, 512)
    assert suite.flops_per_sample("train", recipe) == 71_565_312
    assert suite.flops_per_sample("eval", recipe) == 23_984_896
    with pytest.raises(suite.SuiteError):
        suite.parse_batch_sizes("64,0")


# --- the machine: quiet before each process, contention during each benchmark, interleaved passes ----------


@pytest.mark.quiet  # each benchmark process first waits for its CPUs to be quiet
@pytest.mark.timeout(SMALL_TIMEOUT_S)
def test_repeat_runs_interleaved_passes_and_gives_paired_ratios(tmp_path, shared_data_dir):
    out = tmp_path / "run"
    proc = _driver(*SMALL_RUN, "--repeat", "2", "--quiet-wait", "10", "--out", str(out),
                   "--data-dir", str(shared_data_dir), timeout=SMALL_TIMEOUT_S)
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert sorted(path.name for path in out.glob("*.json")) == ["torch.pass1.json", "torch.pass2.json"]
    passes = summary.load_passes(out)
    assert set(passes) == {"torch"} and set(passes["torch"]) == {1, 2}
    for number, document in passes["torch"].items():
        wait = document["mnist_bench"]["quiet_wait"]
        assert QUIET_WAIT_KEYS <= set(wait) and (wait["pass"], wait["passes"]) == (number, 2)
        assert wait["required"] and wait["max_wait_s"] == 10 and wait["cpus"] == [min(os.sched_getaffinity(0))]
        assert len(document["benchmarks"]) == 4  # eager and tuned, train and eval
        for bench in document["benchmarks"]:
            _check_contention(bench["extra_info"]["contention"], rounds=2)
            assert bench["extra_info"]["contention"]["cpus"] == wait["cpus"]
    # Each (step, batch) has a median over passes and, for the slower mode, a paired ratio with its interval.
    text = (out / summary.SUMMARY_FILE).read_text()
    assert "2 interleaved passes." in text and summary.ORDER_NOTE in text
    for step in suite.STEP_KINDS:
        section = text.split(f"### {suite.group_name(step, 64)}")[1].split("###")[0]
        assert section.count("| fastest |") == 1
        assert re.search(r"\| \d+\.\d\dx \(\d+\.\d\d–\d+\.\d\d\) \|", section), section
    assert "### The machine before each pytest process" in text
    order = [line for line in proc.stdout.splitlines() if line.endswith(": running ...")]
    assert order == ["torch (pass 1/2): running ...", "torch (pass 2/2): running ..."]


def test_passes_interleave_backends():
    assert driver.plan(["torch", "tensorflow", "flax-linen"], 2) == [
        (1, "torch"), (1, "tensorflow"), (1, "flax-linen"), (2, "torch"), (2, "tensorflow"), (2, "flax-linen")]
    assert summary.result_stem("torch", 1, 1) == "torch"  # one pass: --compare still finds <backend>.json
    assert summary.result_stem("torch", 2, 3) == "torch.pass2"


def _saved_benchmark(backend: str, mode: str, speed: float, other_share: float) -> dict:
    contention_block = {"other_share": other_share, "threshold": 0.05, "contended": other_share > 0.05}
    return {"extra_info": {"backend": backend, "mode": mode, "step": "train", "batch_size": 64,
                           "samples_per_s": speed, "contention": contention_block}}


def test_summary_of_two_backends_over_passes_pairs_pass_k_with_pass_k(tmp_path):
    """torch is faster in every pass; flax-linen's second pass shared its CPUs with other work."""
    torch_speeds, linen_speeds = [300.0, 330.0, 310.0], [200.0, 230.0, 205.0]
    for number, (torch_speed, linen_speed) in enumerate(zip(torch_speeds, linen_speeds), start=1):
        for backend, mode, speed in (("torch", "eager", torch_speed), ("flax-linen", "compiled", linen_speed)):
            document = {"datetime": f"2026-01-01T00:0{number}:{'00' if backend == 'torch' else '30'}",
                        "benchmarks": [_saved_benchmark(backend, mode, speed, 0.43 if backend == "flax-linen" and number == 2
                                                        else 0.01)],
                        "mnist_bench": {"outcomes": [], "quiet_wait": {
                            "other_share": 0.01, "threshold": 0.03, "quiet": True, "waited_s": 1.0, "cpus": [0]}}}
            (tmp_path / f"{backend}.pass{number}.json").write_text(json.dumps(document))
    text = summary.table(tmp_path)
    expected = stats.paired_ratio(torch_speeds, linen_speeds).text()
    linen_row = next(line for line in text.splitlines() if line.startswith("| flax-linen | compiled |"))
    assert f"| {expected} |" in linen_row and expected.startswith("1.4") and "(" in expected
    assert "| 205 | 200, 230, 205 |" in linen_row  # the median over passes, then each pass
    assert "pass 2 ⚠ contended 43 %" in linen_row
    assert "| torch | eager | 310 | 300, 330, 310 | fastest |" in text
    # The machine table lists the six processes in the order they ran: torch, flax-linen, torch, ...
    ran = [line.split("|")[2:4] for line in text.splitlines() if re.match(r"\| \d \| (torch|flax-linen) \|", line)]
    assert [(b.strip(), int(n)) for b, n in ran] == [("torch", 1), ("flax-linen", 1), ("torch", 2), ("flax-linen", 2),
                                                    ("torch", 3), ("flax-linen", 3)]


def test_monitor_covers_exactly_the_timed_rounds():
    """pedantic calls setup before and teardown after every round, warm-ups first: only timed rounds count."""
    watch = suite.TimedRoundsMonitor(lambda: ((), {}), warmup_rounds=2, cpus=[min(os.sched_getaffinity(0))])
    for round_number in range(5):  # 2 warm-up rounds, then 3 timed ones
        watch.setup()
        assert watch.monitor.available == (round_number >= 2)
        time.sleep(0.03)  # the "round": a few clock ticks, so /proc/stat moves
        watch.teardown()
    assert len(watch.monitor.readings) == 4  # a start and one reading after each timed round
    assert watch.monitor.summary()["intervals"] == 3


@pytest.mark.quiet  # measures the hog's share of its CPU: a spread test there would change the share
@pytest.mark.timeout(SMALL_TIMEOUT_S)
def test_a_cpu_hog_on_the_benchmark_cpu_is_caught(tmp_path, shared_data_dir):
    """A busy loop pinned to the one CPU the suite uses: --if-busy stop refuses to start; proceed runs and says so."""
    cpu = min(os.sched_getaffinity(0))  # what --threads 1 pins to (contention.pinned_cpus(1))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, [cpu])
        stopped = _driver(*SMALL_RUN, "--modes", "eager", "--quiet-wait", "0", "--if-busy", "stop",
                          "--out", str(tmp_path / "stop"), "--data-dir", str(shared_data_dir), timeout=120)
        assert stopped.returncode == driver.EXIT_FAILED, stopped.stdout + stopped.stderr
        assert re.search(rf"STOPPED, the machine is busy: other processes used \d+% of CPUs {cpu} ", stopped.stderr)
        assert "busiest: pid " in stopped.stderr
        assert not list((tmp_path / "stop").glob("*.json"))  # no pytest process was started

        out = tmp_path / "proceed"
        proc = _driver(*SMALL_RUN, "--modes", "eager", "--quiet-wait", "0", "--out", str(out),
                       "--data-dir", str(shared_data_dir), timeout=SMALL_TIMEOUT_S)
    finally:
        hog.kill()
        hog.wait()
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "⚠ machine busy, going on" in proc.stdout
    document = summary.load_run(out)["torch"]
    wait = document["mnist_bench"]["quiet_wait"]
    assert not wait["quiet"] and wait["other_share"] > 0.2 and wait["busiest"]
    # The hog takes about half of the CPU (one runnable process beside ours): far above the 5 % threshold.
    assert len(document["benchmarks"]) == 2
    for bench in document["benchmarks"]:
        block = bench["extra_info"]["contention"]
        assert block["contended"] is True and block["other_share"] > 0.2, block
    text = (out / summary.SUMMARY_FILE).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| torch | eager |")]
    assert len(rows) == 2 and all("⚠ contended" in row for row in rows), rows
    assert "⚠ busy: went on, its figures are contended" in text
