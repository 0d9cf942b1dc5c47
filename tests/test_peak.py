"""The fp32 matmul peak probe, and how records carry it: measured with the run's threads, optional in the schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mnist_bench.bench.run import peak_probe, worker
from mnist_bench.common import peak, records
from record_factory import make_record

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_subprocess_probe_uses_the_requested_threads_and_cpus():
    result = peak_probe.measure(1, sizes=(128, 256), repeats=2)
    assert result["gflops"] > 0
    assert set(result["per_size_gflops"]) == {"128", "256"}
    assert result["gflops"] == max(result["per_size_gflops"].values())
    # The child saw one BLAS thread and was pinned to one CPU, the first one a worker would use.
    assert result["blas_threads_env"] == {name: "1" for name in peak.BLAS_THREAD_VARIABLES}
    assert result["affinity"] == peak.pinned_cpus(1)
    assert result["threads"] == 1 and result["source"] == "numpy" and result["dtype"] == "float32"


def test_in_process_probe_counts_2n_cubed_flops(monkeypatch):
    # With a clock that advances exactly 1 s per reading pair, GFLOP/s is 2 n^3 / 1e9.
    ticks = iter(range(10_000))
    monkeypatch.setattr(peak.time, "perf_counter", lambda: float(next(ticks)))
    result = peak.measure(sizes=(64,), repeats=3)
    assert math.isclose(result["gflops"], 2 * 64**3 / 1e9)
    with pytest.raises(ValueError):
        peak.measure(sizes=(), repeats=1)


def test_failing_probe_raises_a_probe_error(monkeypatch):
    monkeypatch.setattr(peak.sys, "executable", "/bin/false")
    with pytest.raises(peak_probe.PeakProbeError, match="exited with 1"):
        peak_probe.measure(1)


def test_fraction_and_choice_of_peak():
    cpu, gpu = {"gflops": 200.0, "source": "numpy"}, {"gflops": 50_000.0, "source": "torch"}
    assert peak.for_device("cpu", cpu, gpu) is cpu
    assert peak.for_device("gpu", cpu, gpu) is gpu
    assert peak.fraction(50.0, cpu) == 0.25
    assert peak.fraction(None, cpu) is None and peak.fraction(50.0, None) is None
    assert peak.fraction(50.0, {"gflops": None, "error": "probe failed"}) is None


def test_worker_peak_for_a_run():
    sweep_peak = {"gflops": 150.0, "device": "cpu", "source": "numpy"}
    assert worker.run_peak({"matmul_peak": sweep_peak, "backend": "torch"}, "cpu") is sweep_peak
    assert worker.run_peak({"matmul_peak": None, "backend": "torch"}, "gpu") is None  # probing turned off
    # On an accelerator the framework measures it; a probe that fails is recorded, not raised.
    failed = worker.run_peak({"matmul_peak": sweep_peak, "backend": "no-such-backend"}, "gpu")
    assert failed["gflops"] is None and "unknown backend 'no-such-backend'" in failed["error"]


def test_records_with_and_without_peak_validate():
    old = make_record()  # as written before the peak existed
    assert "peak" not in old and "fraction_of_peak" not in old["flops"]
    new = make_record(peak={"gflops": 143.13, "device": "cpu", "source": "numpy", "method": peak.METHOD},
                      flops={"fraction_of_peak": 0.5})
    records.validate(new)
    with pytest.raises(records.RecordError, match="peak"):
        records.validate({**new, "peak": {"gflops": -1.0}})
    with pytest.raises(records.RecordError, match="fraction_of_peak"):
        records.validate({**new, "flops": {**new["flops"], "fraction_of_peak": "half"}})


def test_recorded_results_still_load():
    paths = sorted((REPO_ROOT / "results").rglob(f"*{records.RECORD_SUFFIX}"))
    assert paths, "no recorded run records under results/"
    for path in paths:
        records.read(path)


@pytest.mark.quiet  # the sweep waits for its CPUs to be quiet before it measures the peak
def test_manifest_and_records_of_a_sweep_carry_the_peak(tmp_path, shared_data_dir):
    """A tiny real sweep: the peak is measured once, in the manifest, and in the record with its fraction."""
    import subprocess
    import sys

    from mnist_bench.bench.run.process import child_env

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "mnist_bench.bench.cli", "run", "--backends", "torch", "--device", "cpu",
                           "--preset", "quick", "--set", "epochs=1", "--set", "steps_per_epoch=30",
                           "--set", "test_limit=500", "--chunk-steps", "5", "--threads", "1",
                           "--data-dir", str(shared_data_dir), "--out", str(out), "--quiet"],
                          cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    (record,) = records.read_dirs([out])
    assert manifest["matmul_peak"]["gflops"] > 0 and manifest["matmul_peak"]["threads"] == 1
    assert record["peak"] == manifest["matmul_peak"]
    assert math.isclose(record["flops"]["fraction_of_peak"],
                        record["flops"]["achieved_gflops"] / manifest["matmul_peak"]["gflops"])
