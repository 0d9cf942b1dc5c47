"""The harness-vs-plain benchmark runs both sides in interleaved rounds and reports a ratio with its interval
(its figures are not asserted: speed belongs to benchmarks; the measured ratios are in results/overhead/)."""

import json
import subprocess
import sys

import pytest

from mnist_bench.bench.perf import plain_loops


@pytest.mark.timeout(600)
def test_overhead_benchmark_reports_both_paths(shared_data_dir, tmp_path):
    out = tmp_path / "overhead.json"
    proc = subprocess.run([sys.executable, "-m", "mnist_bench.bench.perf.overhead", "--backends", "torch", "--modes", "default",
                           "--steps", "9", "--rounds", "2", "--chunk-steps", "3", "--data-dir", str(shared_data_dir),
                           "--no-require-quiet", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [(r["backend"], r["mode"]) for r in results] == [("torch", "eager")]
    (result,) = results
    assert len(result["harness_samples_per_s"]) == len(result["plain_samples_per_s"]) == 2
    assert all(rate > 0 for rate in result["harness_samples_per_s"] + result["plain_samples_per_s"])
    assert result["ratio_low"] <= result["ratio"] <= result["ratio_high"]
    # Each side measured its machine: the harness in its record, the plain loop in its own process.
    assert all(side["contention"]["version"] == 1 for side in result["harness"] + result["plain"])
    assert proc.stdout.count("harness/plain") == 1 and proc.stdout.count("round ") == 2


@pytest.mark.parametrize("backend,mode", sorted(plain_loops.loops()))
def test_every_plain_loop_trains(shared_data_dir, backend, mode):
    proc = subprocess.run([sys.executable, "-m", "mnist_bench.bench.perf.plain_loops", backend, mode, "--steps", "6",
                           "--chunk-steps", "2", "--threads", "1", "--data-dir", str(shared_data_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["chunks"] == 2 and result["steady_samples_per_s"] > 0


def test_overhead_names_a_mode_without_a_plain_loop():
    proc = subprocess.run([sys.executable, "-m", "mnist_bench.bench.perf.overhead", "--backends", "tensorflow", "--modes", "eager"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "'tensorflow' has no plain loop for mode 'eager'; it has: compiled, tuned" in proc.stderr


def test_tools_name_a_missing_part_instead_of_failing(replace_spec):
    # An implementation without a plain loop or a matmul probe is not offered there: a clear NotOffered.
    from mnist_bench.bench.perf import device_peak
    from mnist_bench.common import registry

    replace_spec("torch", plain_loop=None, matmul_probe=None)
    with pytest.raises(registry.NotOffered, match="'torch' has no plain loop"):
        plain_loops.plain_loop("torch", "eager")
    with pytest.raises(registry.NotOffered, match="'torch' has no matmul-probe"):
        device_peak.measure("torch", "cpu")
    assert not any(name == "torch" for name, _ in plain_loops.loops())
