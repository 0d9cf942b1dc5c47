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
import subprocess
import sys
from pathlib import Path

import pytest

from bench.benchmarks import driver, suite, summary
from common import registry

REPO_ROOT = Path(__file__).resolve().parent.parent
QUICK_TIMEOUT_S = 900


def _driver(*args: str, timeout: float = QUICK_TIMEOUT_S) -> subprocess.CompletedProcess:
    from bench.harness import child_env

    return subprocess.run([sys.executable, "-m", "bench.benchmarks", *args], cwd=REPO_ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, shared_data_dir):
    out = tmp_path_factory.mktemp("benchmarks") / "run"
    proc = _driver("--quick", "--out", str(out), "--data-dir", str(shared_data_dir))
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return out, proc


def _expected_cases() -> list[tuple[str, str, str]]:
    return [(backend, mode, step) for backend in registry.BACKENDS for mode in registry.MODES[backend]
            for step in suite.STEP_KINDS]


@pytest.mark.timeout(QUICK_TIMEOUT_S)
def test_quick_run_times_every_backend_and_mode(quick_run):
    out, proc = quick_run
    peak = json.loads((out / summary.PEAK_FILE).read_text())
    assert peak["gflops"] > 0 and peak["source"] == "numpy"
    results = summary.load_run(out)
    assert set(results) == set(registry.BACKENDS)
    for backend, document in results.items():
        timed = {(b["extra_info"]["mode"], b["extra_info"]["step"]): b for b in document["benchmarks"]}
        outcomes = {o["test"].split("::")[-1]: o for o in document["mnist_bench"]["outcomes"]}
        for mode in registry.MODES[backend]:
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
                assert info["versions"]["numpy"] and any(pkg in info["versions"] for pkg in registry.entry(backend).packages)
                assert info["threads"]["requested"] >= 1
        assert len(timed) == sum(not suite.known_broken(backend, m, "cpu") for m in registry.MODES[backend]) * 2
    # The side-by-side table names every timed case and every untimed one.
    summary = (out / summary.SUMMARY_FILE).read_text()
    for backend, mode, step in _expected_cases():
        assert f"{backend}-{mode}-b64" in summary or f"| {backend} | {mode} |" in summary
    assert "### train step, batch 64" in summary and "### eval step, batch 64" in summary
    assert "### train step, batch 64" in proc.stdout


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
    proc = _driver("--quick", "--backends", "torch", "--modes", "eager", "--no-peak-probe", "--compare", str(base),
                   "--compare-fail", "median:10%", "--out", str(tmp_path / "new"), "--data-dir", str(shared_data_dir))
    assert proc.returncode == driver.EXIT_FAILED, proc.stdout + proc.stderr
    assert "REGRESSED" in proc.stderr
    failures = [line for line in proc.stderr.splitlines() if "has failed" in line]
    assert any("test_eval_step[torch-eager-b64]" in line for line in failures), proc.stderr
    assert not any("test_train_step" in line for line in failures), proc.stderr
    assert "Comparing against benchmarks from" in (tmp_path / "new" / "torch.log").read_text()


# --- input checks, without running a framework ---------------------------------------------


def test_driver_refuses_bad_input_before_running(tmp_path, capsys, monkeypatch):
    assert driver.main(["--backends", "nope", "--out", str(tmp_path / "a")]) == driver.EXIT_USAGE
    assert "unknown backend 'nope'" in capsys.readouterr().err
    assert driver.main(["--modes", "warp", "--out", str(tmp_path / "b")]) == driver.EXIT_USAGE
    assert "unknown mode(s) 'warp'" in capsys.readouterr().err
    assert driver.main(["--compare", str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == driver.EXIT_USAGE
    assert "nothing to compare with" in capsys.readouterr().err
    assert driver.main(["--compare-fail", "median:5%", "--out", str(tmp_path / "d")]) == driver.EXIT_USAGE
    assert "needs --compare" in capsys.readouterr().err
    # A backend that is not installed is a failure naming the fix, never a silent skip.
    fake = registry.BackendEntry("jax", "backends.jax_backend", "JaxBackend", ("no_such_package_mnist_bench",), "jax")
    monkeypatch.setitem(registry.BACKENDS, "jax", fake)
    assert driver.main(["--backends", "jax", "--out", str(tmp_path / "e")]) == driver.EXIT_USAGE
    err = capsys.readouterr().err
    assert "no_such_package_mnist_bench" in err and ".[jax]" in err
    assert not any((tmp_path / name).exists() for name in "abcde")  # nothing ran, nothing written


def test_suite_without_a_backend_is_a_usage_error():
    from bench.harness import child_env

    proc = subprocess.run([sys.executable, "-m", "pytest", "bench/benchmarks", "-p", "no:cacheprovider"],
                          cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--mnist-backend" in proc.stderr and "python -m bench.benchmarks" in proc.stderr


def test_modes_come_from_the_registry(monkeypatch):
    # A mode added to the registry (say "warp") is benchmarked with no change to the suite.
    monkeypatch.setitem(registry.MODES, "torch", (*registry.MODES["torch"], "warp"))
    assert suite.select_modes("torch", "all")[-1] == "warp"
    assert suite.select_modes("torch", "warp") == ("warp",)
    assert suite.select_modes("jax", "warp") == ()  # jax has no such mode: left out, and the driver says so
    assert suite.select_modes("tensorflow", "default") == (registry.DEFAULT_MODE["tensorflow"],)
    assert suite.select_modes("jax", "tuned,default") == ("compiled", "tuned")
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
