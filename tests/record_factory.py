"""Synthetic, schema-valid run records for tests of the reporting side.

``make_record`` builds one record whose numbers hang together (the confusion
matrix gives the stated accuracy, epoch times follow from the throughput), so
report, compare and export tests can assert on them without training anything.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from mnist_bench.common import flops, metrics
from mnist_bench.common.model import NUM_CLASSES
from mnist_bench.common.records import RECORD_SUFFIX, SCHEMA_VERSION, validate

TEST_SIZE = 10_000
TRAIN_SIZE = 60_000
TARGET_ACCURACY = 0.97

VERSIONS = {
    "torch": {"torch": "2.3.1", "cuda": "", "cudnn": ""},
    "tensorflow": {"tensorflow": "2.16.1", "keras": "3.3.3"},
    "flax-linen": {"jax": "0.4.30", "jaxlib": "0.4.30", "flax": "0.10.0", "optax": "0.2.3"},
    "flax-nnx": {"jax": "0.4.30", "jaxlib": "0.4.30", "flax": "0.10.0", "optax": "0.2.3"},
    "keras-torch": {"keras": "3.3.3", "torch": "2.3.1"},
}

MACHINE = {
    "os": "Linux-6.1.0-x86_64-with-glibc2.36",
    "arch": "x86_64",
    "python": "3.11.2",
    "python_implementation": "CPython",
    "cpu_model": "Synthetic CPU @ 3.0GHz",
    "logical_cores": 16,
    "physical_cores": 8,
    "memory_total_bytes": 128 * 2**30,
    "gpus": [],
}


def _confusion_for(accuracy: float) -> dict[str, Any]:
    """A classification report over a balanced 10-class test set with ``accuracy``."""
    labels = np.repeat(np.arange(NUM_CLASSES), TEST_SIZE // NUM_CLASSES)
    preds = labels.copy()
    wrong = TEST_SIZE - round(accuracy * TEST_SIZE)
    # Spread the mistakes over every class (stride through the sorted labels).
    misses = np.linspace(0, TEST_SIZE - 1, num=wrong, dtype=int) if wrong else np.array([], dtype=int)
    preds[misses] = (labels[misses] + 1) % NUM_CLASSES
    return metrics.classification_report(labels, preds).to_dict()


def _epochs(n: int, accuracy: float, samples_per_s: float, first_step_s: float) -> list[dict[str, Any]]:
    train_s = TRAIN_SIZE / samples_per_s
    eval_s = TEST_SIZE / (samples_per_s * 5)
    elapsed = first_step_s
    rows = []
    for epoch in range(1, n + 1):
        # Accuracy climbs one point per epoch towards the final value.
        acc = max(0.0, min(1.0, accuracy - 0.01 * (n - epoch)))
        elapsed += train_s + eval_s
        rows.append(
            {
                "epoch": epoch,
                "steps": TRAIN_SIZE // 64,
                "train_loss": round(0.3 / epoch, 6),
                "test_accuracy": acc,
                "test_macro_f1": max(0.0, acc - 0.001),
                "wall_s": train_s + eval_s,
                "train_s": train_s,
                "eval_s": eval_s,
                "elapsed_s": elapsed,
            }
        )
    return rows


def _merge(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# A quiet machine's contention block; ``BUSY`` merged over it makes a contended run.
QUIET = {"version": 1, "cpus": [0, 1], "threshold": 0.05, "seconds": 300.0, "intervals": 150, "other_share": 0.004,
         "steal_share": 0.001, "own_share": 0.98, "harness_share": 0.002, "worst_interval_other_share": 0.02,
         "contended_intervals": 0, "contended": False, "quiet_wait": {"other_share": 0.0, "threshold": 0.03,
                                                                      "quiet": True, "waited_s": 1.0}}
BUSY = {"other_share": 0.43, "worst_interval_other_share": 0.5, "contended_intervals": 140, "contended": True}


def make_record(
    backend: str = "torch",
    mode: str = "eager",
    seed: int = 0,
    status: str = "ok",
    samples_per_s: float = 1000.0,
    accuracy: float = 0.98,
    epochs: int = 2,
    **overrides: Any,
) -> dict:
    """One schema-valid record; ``overrides`` are deep-merged into it last.

    A dict override merges into the dict already there (``timing={"time_to_target_s":
    None}`` changes one field); anything else replaces the value. A non-``ok``
    status gets an ``error`` block instead of results. ``run_id`` defaults to
    ``<backend>-<mode>-<device>-s<seed>`` (characters a run id may not hold become ``_``).
    """
    device = overrides.get("device", "cpu")
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        # Modes are free text; run ids are not.
        "run_id": re.sub(r"[^A-Za-z0-9_.-]", "_", f"{backend}-{mode}-{device}-s{seed}"),
        "status": status,
        "error": None,
        "backend": backend,
        "mode": mode,
        "device": device,
        "devices": 1,
        "hosts": 1,
        "seed": seed,
        "recipe": {"dataset": "mnist", "epochs": epochs, "batch_size": 64, "learning_rate": 0.01},
        "data": {"dataset": "mnist", "source": "synthetic", "train_size": TRAIN_SIZE, "test_size": TEST_SIZE},
        "versions": dict(VERSIONS[backend]),
        "device_info": {"kind": "cpu", "name": "cpu", "count": 1},
        "machine": copy.deepcopy(MACHINE),
        "mnist_bench": {"version": "0.1.0", "git": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": False}},
        "threads": {"intra_op": 8, "inter_op": 1},
        "numerics": {"dtype": "float32", "tf32": False},
        "command": f"mnist-bench run --backend {backend} --mode {mode} --seed {seed}",
        "started_at": "2024-06-01T12:00:00+00:00",
        "finished_at": "2024-06-01T12:05:00+00:00",
        "contention": copy.deepcopy(QUIET) if status == "ok" else {"version": 1, "cpus": [0, 1], "threshold": 0.05},
    }
    if status == "ok":
        first_step_s = 1.0
        epoch_rows = _epochs(epochs, accuracy, samples_per_s, first_step_s)
        reached = [row["elapsed_s"] for row in epoch_rows if row["test_accuracy"] >= TARGET_ACCURACY]
        train_per_sample = flops.train_flops()
        report = _confusion_for(accuracy)
        record.update(
            epochs=epoch_rows,
            timing={
                "build_s": 0.5,
                "first_step_s": first_step_s,
                "steady_samples_per_s": samples_per_s,
                "steady_samples_per_s_q1": samples_per_s * 0.97,
                "steady_samples_per_s_q3": samples_per_s * 1.03,
                "steady_chunks": 10,
                "chunk_steps": 50,
                "eval_samples_per_s": samples_per_s * 5,
                "total_wall_s": epoch_rows[-1]["elapsed_s"] + 0.5 if epoch_rows else 0.5,
                "target_accuracy": TARGET_ACCURACY,
                "time_to_target_s": reached[0] if reached else None,
            },
            memory={"peak_rss_bytes": 800 * 2**20, "peak_device_bytes": None},
            flops={"train_per_sample": train_per_sample, "achieved_gflops": samples_per_s * train_per_sample / 1e9},
            final={"test": report},
        )
    else:
        record["error"] = {
            "type": "RuntimeError",
            "message": f"synthetic {status} run",
            "tail": "Traceback (most recent call last):\n  ...\nRuntimeError: synthetic",
            "exit_code": 1,
        }
    _merge(record, overrides)
    validate(record, record["run_id"])
    return record


def write_run_dir(tmp_path: Path, records: list[dict], name: str = "run") -> Path:
    """Write ``records`` as ``<tmp_path>/<name>/<run_id>.run.json``; return that folder."""
    run_dir = Path(tmp_path) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    for record in records:
        (run_dir / f"{record['run_id']}{RECORD_SUFFIX}").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return run_dir
