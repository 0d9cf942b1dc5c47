"""The report: contents, self-containment, escaping, strictness and the Welch interval."""

import re

import pytest

from mnist_bench.bench.results import report
from mnist_bench.common.records import RecordError
from record_factory import make_record, write_run_dir

INJECTED = "<script>alert(1)</script> | boom"
BACKENDS = {"torch": ("eager", 1500.0), "tensorflow": ("eager", 900.0), "flax-linen": ("compiled", 2000.0)}


def sweep() -> list[dict]:
    """3 backends x 3 seeds, plus one failed run whose error message carries markup."""
    records = [
        make_record(backend=backend, mode=mode, seed=seed, samples_per_s=rate * (1 + 0.02 * seed), accuracy=0.98 + 0.001 * seed)
        for backend, (mode, rate) in BACKENDS.items()
        for seed in range(3)
    ]
    records.append(make_record(backend="torch", mode="compiled", status="failed", error={"message": INJECTED}))
    return records


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    run_dir = write_run_dir(root, sweep())
    (run_dir / "parity.json").write_text(
        '{"kind": "parity", "checks": [{"a": "torch", "b": "flax-linen", "check": "forward_logits",'
        ' "max_abs_diff": 1e-6, "tolerance": 1e-5, "passed": true}]}'
    )
    (run_dir / "manifest.json").write_text('{"command": "mnist-bench run --backends all --seeds 0,1,2", "runs": []}')
    warnings = []
    paths = report.write_report([run_dir], root / "out", warn=warnings.append)
    return paths, warnings


def test_files_and_markdown_contents(written):
    paths, warnings = written
    assert warnings == []
    assert paths["markdown"].is_file() and paths["html"].is_file()
    md = paths["markdown"].read_text(encoding="utf-8")
    for backend in BACKENDS:
        assert backend in md
    # Headline first: the fastest group and the accuracy verdict, before any table.
    first = md.split("\n## ")[0]
    assert "flax-linen/compiled is fastest" in first and "1.33x (1.33–1.33) torch/eager" in first
    assert "accuracy agrees within ±0.50 pp for all 3 pairs" in first
    # The failed run is listed with its error, and its group keeps a summary row.
    assert "torch-compiled-cpu-s0" in md and "failed" in md
    assert "\\<script\\>alert(1)\\</script\\> \\| boom" in md
    assert "| torch/compiled | 0/1 |" in md
    assert "mnist-bench run --backends all --seeds 0,1,2" in md
    assert "forward_logits" in md  # parity.json shown
    assert "Welch" in md and "statistical statement" in md


def test_html_is_self_contained_with_plots(written):
    paths, _ = written
    page = paths["html"].read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    references = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, re.IGNORECASE)
    assert references and all(ref.startswith(("data:", "#")) for ref in references), references
    assert "<script" not in page.lower().replace("&lt;script", "")
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', page)
    assert len(images) >= 4  # throughput, epochs, wall clock, confusion
    for name in ("throughput", "epochs", "wall_clock", "confusion"):
        assert paths[f"plot:{name}"].read_bytes().startswith(b"\x89PNG")


def test_html_escapes_record_strings(written):
    paths, _ = written
    page = paths["html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | boom" in page
    assert "<script>alert(1)" not in page


def test_welch_interval_hand_computed():
    # Equal variances (4e-6) and n = 3 per side make the Welch df exactly 4:
    # se = sqrt(2 * 4e-6 / 3) = 0.00163299, t(0.975, 4) = 2.7764451,
    # CI = 0.002 ± 0.00453391 = [-0.00253391, 0.00653391].
    interval = report.welch_interval([0.980, 0.982, 0.984], [0.978, 0.980, 0.982])
    assert (interval.n_a, interval.n_b) == (3, 3)
    assert interval.difference == pytest.approx(0.002)
    assert interval.df == pytest.approx(4.0)
    assert interval.low == pytest.approx(-0.00253391, abs=1e-7)
    assert interval.high == pytest.approx(0.00653391, abs=1e-7)
    assert report.parity_verdict(interval, 0.005) == "inconclusive (CI crosses the margin)"
    assert report.parity_verdict(interval, 0.007) == "agree"
    # Unequal n and variances, worked by hand: A = [.97, .98, .99, .98] has s^2 = 2e-4/3, so
    # s^2/n = 1.6667e-5; B = [.95, .99] has s^2 = 8e-4, s^2/n = 4e-4; se = sqrt(4.16667e-4) = 0.0204124;
    # df = (4.16667e-4)^2 / ((1.6667e-5)^2 / 3 + (4e-4)^2 / 1) = 1.0844419.
    unequal = report.welch_interval([0.97, 0.98, 0.99, 0.98], [0.95, 0.99])
    assert unequal.difference == pytest.approx(0.01)
    assert unequal.df == pytest.approx(1.0844419, abs=1e-6)
    # t(0.975, df 1.0844) = 10.5909: between the tables' 12.706 (df 1) and 4.303 (df 2).
    half_width = 10.5909 * 0.0204124
    assert (unequal.low, unequal.high) == pytest.approx((0.01 - half_width, 0.01 + half_width), abs=1e-5)
    assert half_width > 0.2  # barely more than one degree of freedom: a very wide interval


def test_parity_verdicts():
    assert report.welch_interval([0.98], [0.98, 0.99]) is None
    assert report.parity_verdict(None) == "inconclusive (n too small)"
    far = report.welch_interval([0.99, 0.991, 0.989], [0.95, 0.951, 0.949])
    assert report.parity_verdict(far) == "differ"
    same = report.welch_interval([0.98, 0.98], [0.98, 0.98])
    assert (same.low, same.high) == (0.0, 0.0) and report.parity_verdict(same) == "agree"


def test_single_seed_groups_are_inconclusive(tmp_path):
    run_dir = write_run_dir(tmp_path, [make_record(backend="torch"), make_record(backend="flax-linen", mode="compiled")])
    md = report.write_report([run_dir], tmp_path / "out", warn=None)["markdown"].read_text(encoding="utf-8")
    assert "inconclusive (n too small)" in md


def test_only_failed_runs_still_report(tmp_path):
    run_dir = write_run_dir(tmp_path, [make_record(status="timeout"), make_record(seed=1, status="diverged")])
    paths = report.write_report([run_dir], tmp_path / "out", warn=None)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "| torch/eager | 0/2 |" in md and "timeout" in md and "diverged" in md
    assert "No run measured steady-state throughput" in md


def test_fraction_of_peak_column(tmp_path):
    """Records carrying the sweep's matmul peak get a % of peak column and a note naming the peak; older ones do not."""
    peak = {"gflops": 143.130624, "device": "cpu", "source": "numpy", "threads": 2}
    # 1000 samples/s x 71,565,312 FLOPs = 71.565312 GFLOP/s: half the peak.
    with_peak = [make_record(backend="torch", samples_per_s=1000.0, peak=peak),
                 make_record(backend="flax-linen", mode="compiled", samples_per_s=500.0, peak=peak)]
    md = report.write_report([write_run_dir(tmp_path, with_peak)], tmp_path / "out", warn=None)["markdown"].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Group |"))
    assert header.rstrip(" |").endswith("% of peak")
    torch_row = next(line for line in md.splitlines() if line.startswith("| torch/eager |"))
    linen_row = next(line for line in md.splitlines() if line.startswith("| flax-linen/compiled |"))
    assert torch_row.rstrip(" |").endswith("50.0 %") and linen_row.rstrip(" |").endswith("25.0 %")
    assert "143 GFLOP/s (numpy on cpu, 2 threads)" in md
    old = report.write_report([write_run_dir(tmp_path, [make_record()], "old")], tmp_path / "old-out", warn=None)
    assert "% of peak" not in old["markdown"].read_text()


def test_strict_raises_on_corrupt_record(tmp_path):
    run_dir = write_run_dir(tmp_path, sweep())
    (run_dir / "broken.run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RecordError, match="broken.run.json"):
        report.write_report([run_dir], tmp_path / "strict", strict=True)


def test_non_strict_warns_and_still_writes(tmp_path):
    run_dir = write_run_dir(tmp_path, sweep())
    (run_dir / "broken.run.json").write_text("{not json", encoding="utf-8")
    warnings = []
    paths = report.write_report([run_dir], tmp_path / "lenient", warn=warnings.append)
    assert len(warnings) == 1 and "broken.run.json" in warnings[0]
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "Skipped files" in md and "broken.run.json" in md
    assert "flax-linen/compiled is fastest" in md


def test_accuracy_vs_wall_clock_without_elapsed(tmp_path):
    record = make_record()
    for epoch in record["epochs"]:
        del epoch["elapsed_s"]
    paths = report.write_report([write_run_dir(tmp_path, [record])], tmp_path / "out", warn=None)
    assert paths["plot:wall_clock"].is_file()


def test_importing_report_is_cheap():
    import subprocess
    import sys

    heavy = "{'matplotlib', 'torch', 'tensorflow', 'jax', 'flax', 'keras'}"
    code = (
        "import sys, mnist_bench.bench.results.report, mnist_bench.bench.results.compare, mnist_bench.bench.results.export; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_contended_runs_are_flagged_next_to_their_figures(tmp_path):
    from record_factory import BUSY

    records = sweep()
    for record in records:
        if record["backend"] == "tensorflow" and record["status"] == "ok":
            record["contention"] = {**record["contention"], **BUSY}
    run_dir = write_run_dir(tmp_path, records)
    md = report.write_report([run_dir], tmp_path / "out", warn=None)["markdown"].read_text(encoding="utf-8")
    first = md.split("\n## ")[0]
    assert "⚠ 3 of 9 finished runs were measured on a busy machine" in first
    assert "other processes used up to 43 %" in first
    summary = md.split("## Summary")[1].split("\n## ")[0]
    tf_row = next(line for line in summary.splitlines() if line.startswith("| tensorflow"))
    assert "⚠ 43.0 %, contended (3/3 runs)" in tf_row
    torch_row = next(line for line in summary.splitlines() if line.startswith("| torch/eager"))
    assert "0.4 %" in torch_row and "⚠" not in torch_row


def test_quiet_and_unrecorded_machine_load(tmp_path):
    quiet = write_run_dir(tmp_path, sweep(), "quiet")
    md = report.write_report([quiet], tmp_path / "q", warn=None)["markdown"].read_text(encoding="utf-8")
    assert "Quiet machine: other processes used at most 0.4 % of a run's CPUs" in md
    old = [{k: v for k, v in record.items() if k != "contention"} for record in sweep()]
    md = report.write_report([write_run_dir(tmp_path, old, "old")], tmp_path / "o", warn=None)["markdown"]
    text = md.read_text(encoding="utf-8")
    assert "9 of 9 finished runs do not record their machine's load" in text and "not recorded" in text


def test_markup_in_any_record_field_is_escaped_in_both_formats(tmp_path):
    """Modes, versions and commands are free text from records: in HTML they must stay text, and in
    Markdown a `|` in them must not split a table cell."""
    hostile = "<script>alert(1)</script>|x"
    records = [make_record(backend="torch", mode=hostile, seed=seed, versions={"torch": hostile}, command=hostile)
               for seed in range(2)] + [make_record(backend="flax-linen", mode="compiled", seed=seed) for seed in range(2)]
    paths = report.write_report([write_run_dir(tmp_path, records)], tmp_path / "out", warn=None,
                                title=hostile)
    page = paths["html"].read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;|x") >= 5  # title, headline, tables, command
    md = paths["markdown"].read_text(encoding="utf-8")
    outside_fences = re.sub(r"^(`{3,})\n.*?\n\1$", "", md, flags=re.MULTILINE | re.DOTALL)  # code shows as text
    assert not re.search(r"(?<!\\)<", outside_fences)
    assert md.count("\\<script\\>alert(1)\\</script\\>\\|x") >= 5
    tables = re.findall(r"(?:^\|.*\n)+", md, re.MULTILINE)
    assert tables
    for table in tables:
        pipes = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(pipes) == 1, table  # every row has as many cells as the header


def test_records_with_nan_from_older_code_are_named_and_the_rest_reported(tmp_path, capsys):
    # Issue 17: older mnist-bench wrote NaN (json.dump allows it) into records, manifests and parity.json.
    from mnist_bench.bench import cli

    runs = sweep()
    runs[0]["timing"]["steady_samples_per_s"] = float("nan")
    runs[1]["epochs"][0]["train_loss"] = float("inf")
    runs[2]["final"]["test"]["accuracy"] = float("nan")
    run_dir = write_run_dir(tmp_path, runs)
    (run_dir / "parity.json").write_text('{"checks": [{"a": "torch", "b": "jax", "check": "forward_logits",'
                                         ' "max_abs_diff": NaN, "tolerance": 1e-5, "passed": false}]}')
    (run_dir / "manifest.json").write_text('{"command": "mnist-bench run", "matmul_peak": {"gflops": NaN}}')
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for run, field in zip(runs, ("timing/steady_samples_per_s", "epochs/0/train_loss", "final/test/accuracy")):
        assert f"{run['run_id']}.run.json: invalid at {field}: not a finite number (NaN or infinity)" in err
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Skipped files" in md and "not a finite number" in md
    assert f"{len(runs) - 3} runs in 1 run directory" in md
    # --strict stops at the first one, as a clear error (exit 2), not a traceback.
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "strict"), "--strict"]) == 2
    assert "not a finite number" in capsys.readouterr().err


def test_the_first_lines_say_what_keras_and_nnx_cost(tmp_path):
    # Speeds per seed: keras-torch/fit at half of torch/eager and a third of torch/tuned; flax-nnx level with
    # flax-linen in the default modes, where its interval holds 1.
    speeds = {("torch", "eager"): 1000, ("torch", "tuned"): 1500, ("keras-torch", "fit"): 500,
              ("flax-linen", "compiled"): 400, ("flax-nnx", "nnx-jit"): 400, ("flax-linen", "tuned"): 700}
    jitter = {0: 1.0, 1: 1.03, 2: 0.98}
    records = [make_record(backend, mode, seed, samples_per_s=speed * jitter[seed] * (1.01 if seed == 1 and
                                                                                       backend == "flax-nnx" else 1))
               for (backend, mode), speed in speeds.items() for seed in jitter]
    run_dir = write_run_dir(tmp_path, records)
    lines = (report.write_report([run_dir], tmp_path / "out", warn=None)["markdown"]).read_text().splitlines()
    body = [line for line in lines if line.strip()]
    first = body[1:3]  # right under the title
    keras = next(line for line in first if line.startswith("**What Keras costs"))
    nnx = next(line for line in first if line.startswith("**What Flax NNX costs"))
    assert "keras-torch/fit over torch/eager (default modes) 0.50x" in keras and "2.00x slower" in keras
    assert "keras-torch/fit over torch/tuned (fastest modes) 0.33x" in keras and "3.00x slower" in keras
    assert "flax-nnx/nnx-jit over flax-linen/compiled (default modes)" in nnx and "no difference measured" in nnx
    # flax-nnx/tuned did not run: no fastest pair for NNX; flax-linen/tuned alone is not a layer.
    assert "fastest modes" not in nnx
