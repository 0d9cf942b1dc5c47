"""The GEMM ceiling (bench/perf/ceiling.py) times exactly the products mnist_bench.common.flops counts."""

import json
import subprocess
import sys

import pytest

from mnist_bench.bench.perf.ceiling import gemm_shapes
from mnist_bench.common import flops


def test_the_gemms_are_the_counted_flops():
    for batch in (1, 64, 512):
        assert sum(2 * m * k * n for m, k, n in gemm_shapes(batch).values()) == flops.train_flops() * batch
    assert "conv1 input grad" not in gemm_shapes(64)  # the image needs no gradient


def test_ceiling_reports_every_gemm():
    proc = subprocess.run([sys.executable, "-m", "mnist_bench.bench.perf.ceiling", "--batch", "4", "--threads", "1", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert set(result["gemms"]) == set(gemm_shapes(4))
    assert all(row["gflops"] > 0 for row in result["gemms"].values())
    assert result["ceiling_samples_per_s"] == pytest.approx(4 / (result["step_ms"] / 1e3))
