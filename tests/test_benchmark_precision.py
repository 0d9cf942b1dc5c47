"""The benchmark suite across precisions and batch sizes (bench/benchmarks/sweep.py): bf16 against fp32 per
backend, paired by pass, and where each curve stops scaling; one small real run through the driver."""

from __future__ import annotations

import json

import pytest

from mnist_bench.bench.benchmarks import suite, summary, sweep
from mnist_bench.bench.results import stats
from test_benchmarks import SMALL_TIMEOUT_S, _driver


def _info(batch: int, speed: float, precision: str = "fp32", number: int = 1, step: str = "train",
          backend: str = "torch", mode: str = "eager") -> dict:
    return {"step": step, "batch_size": batch, "backend": backend, "mode": mode, "precision": precision,
            "samples_per_s": speed, "pass": number}


def test_a_curve_stops_scaling_where_doubling_gains_under_ten_percent():
    assert sweep.stops_scaling({64: 1000, 128: 1500, 256: 1600, 512: 1700}) == 128
    assert sweep.stops_scaling({64: 1000, 128: 1500, 256: 2000}) is None  # still scaling at the largest
    assert sweep.stops_scaling({64: 1000}) is None
    text = "\n".join(sweep.scaling_lines([_info(64, 1000), _info(128, 1500), _info(256, 1600)]))
    assert "| train | torch | eager | fp32 | 1,000 | 1,500 | 1,600 | after batch 128 |" in text \
        or "| train | torch | eager | fp32 | 1000 | 1500 | 1600 | after batch 128 |" in text, text


def test_bf16_over_fp32_is_paired_by_pass_and_never_mixes_steps_or_batches():
    fp32, bf16 = [1000.0, 1100.0, 1050.0], [1800.0, 1950.0, 1900.0]
    infos = [_info(64, speed, "fp32", k) for k, speed in enumerate(fp32, 1)]
    infos += [_info(64, speed, "bf16", k) for k, speed in enumerate(bf16, 1)]
    infos += [_info(64, 50.0, "bf16", 1, step="eval")]  # no fp32 eval figure: no ratio for it
    (gain,) = sweep.precision_gains(infos)
    assert (gain.step, gain.batch_size, gain.precision) == ("train", 64, "bf16")
    assert gain.ratio.text() == stats.paired_ratio(bf16, fp32).text()
    assert gain.ratio.text().startswith("1.7") or gain.ratio.text().startswith("1.8")


def test_summary_groups_each_precision_apart(tmp_path):
    document = {"datetime": "2026-01-01T00:00:00", "mnist_bench": {"outcomes": []},
                "benchmarks": [{"extra_info": {**_info(64, speed, precision), "contention": None}}
                               for precision, speed in (("fp32", 1000.0), ("bf16", 1800.0))]}
    (tmp_path / "torch.json").write_text(json.dumps(document))
    text = summary.table(tmp_path)
    fp32_table = text.split(f"### {suite.group_name('train', 64)}\n")[1].split("###")[0]
    bf16_table = text.split(f"### {suite.group_name('train', 64, 'bf16')}\n")[1].split("###")[0]
    assert "1,000" in fp32_table or "1000" in fp32_table
    assert "1,800" not in fp32_table and "1800" not in fp32_table, "a bf16 figure ranked among fp32 ones"
    assert "1,800" in bf16_table or "1800" in bf16_table
    assert "### What a lower precision buys" in text and "| train | 64 | torch | eager | bf16 | 1.80x" in text


@pytest.mark.quiet  # each benchmark process first waits for its CPUs to be quiet
@pytest.mark.timeout(SMALL_TIMEOUT_S)
def test_a_precision_and_batch_sweep_run(tmp_path, shared_data_dir):
    out = tmp_path / "run"
    proc = _driver("--quick", "--backends", "torch", "--modes", "eager", "--threads", "1", "--no-peak-probe",
                   "--precision", "fp32,bf16", "--batch-sizes", "32,64", "--repeat", "2", "--quiet-wait", "10",
                   "--out", str(out), "--data-dir", str(shared_data_dir), timeout=SMALL_TIMEOUT_S)
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    infos = summary.tagged_infos(summary.load_passes(out))
    seen = {(i["step"], i["batch_size"], i["precision"], i["pass"]) for i in infos}
    assert seen == {(step, batch, precision, number) for step in suite.STEP_KINDS for batch in (32, 64)
                    for precision in ("fp32", "bf16") for number in (1, 2)}
    text = (out / summary.SUMMARY_FILE).read_text()
    assert f"### {suite.group_name('train', 64, 'bf16')}" in text
    assert "### What a lower precision buys" in text and "### Batch sweep" in text
    assert (out / sweep.PLOT_FILE).read_bytes().startswith(b"\x89PNG")


def test_the_driver_refuses_a_precision_the_backend_lacks(tmp_path):
    proc = _driver("--quick", "--backends", "flax-linen", "--device", "gpu", "--precision", "fp16",
                   "--out", str(tmp_path / "run"), timeout=120)
    assert proc.returncode == 2 and "flax-linen does not train in fp16" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()
