"""The side-by-side overhead benchmark runs and reports both paths (its figures are not asserted:
speed belongs to benchmarks; the measured ratios are in the harness issue's closing note)."""

import json
import subprocess
import sys

import pytest


@pytest.mark.timeout(600)
def test_overhead_benchmark_reports_both_paths(shared_data_dir, tmp_path):
    out = tmp_path / "overhead.json"
    proc = subprocess.run([sys.executable, "-m", "bench.overhead", "--backends", "torch", "--modes", "default,tuned",
                           "--steps", "4",
                           "--rounds", "2", "--chunk-steps", "2", "--data-dir", str(shared_data_dir),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [(r["backend"], r["mode"]) for r in results] == [("torch", "eager"), ("torch", "tuned")]
    for result in results:
        assert len(result["harness_samples_per_s"]) == len(result["plain_samples_per_s"]) == 2
        assert all(rate > 0 for rate in result["harness_samples_per_s"] + result["plain_samples_per_s"])
        assert result["ratio_median"] > 0
    assert proc.stdout.count("ratio") == 2


def test_overhead_names_a_mode_without_a_plain_loop():
    proc = subprocess.run([sys.executable, "-m", "bench.overhead", "--backends", "tensorflow", "--modes", "eager"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no plain loop for tensorflow in mode 'eager'" in proc.stderr
