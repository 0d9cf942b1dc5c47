"""CSV export: one row per record, readable back with the csv module."""

import csv

from mnist_bench.bench.results.export import FIELDS, rows, write_csv
from record_factory import make_record, write_run_dir


def test_csv_round_trip(tmp_path):
    records = [make_record(backend=backend, seed=seed) for backend in ("torch", "flax-linen") for seed in range(2)]
    records.append(make_record(backend="tensorflow", status="failed", error={"message": 'bad, "quoted"\nsecond line'}))
    path = write_csv([write_run_dir(tmp_path, records)], tmp_path / "out" / "runs.csv")

    with path.open(newline="", encoding="utf-8") as fh:
        read_back = list(csv.DictReader(fh))
    assert tuple(read_back[0]) == FIELDS
    assert len(read_back) == len(records)
    by_id = {row["run_id"]: row for row in read_back}
    assert float(by_id["torch-eager-cpu-s1"]["steady_samples_per_s"]) == 1000.0
    assert float(by_id["flax-linen-eager-cpu-s0"]["test_accuracy"]) == 0.98
    assert by_id["flax-linen-eager-cpu-s0"]["versions"].startswith("jax 0.4.30")
    failed = by_id["tensorflow-eager-cpu-s0"]
    assert failed["status"] == "failed" and failed["test_accuracy"] == "" and failed["epochs"] == "0"
    assert failed["error"] == 'RuntimeError: bad, "quoted"\nsecond line'


def test_rows_keys_and_missing_values():
    flat = rows([make_record(memory={"peak_device_bytes": None}, timing={"time_to_target_s": None})])[0]
    assert tuple(flat) == FIELDS
    assert flat["peak_device_bytes"] is None and flat["time_to_target_s"] is None
    assert flat["epochs"] == 2 and flat["error"] == ""


def test_corrupt_file_is_skipped_with_a_warning(tmp_path):
    run_dir = write_run_dir(tmp_path, [make_record()])
    (run_dir / "bad.run.json").write_text("[]", encoding="utf-8")
    warnings = []
    path = write_csv([run_dir], tmp_path / "runs.csv", warn=warnings.append)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert len(warnings) == 1 and "bad.run.json" in warnings[0]
