"""The precision dimension (common/precision.py): named everywhere, refused where it cannot run, checked
against what the framework reports, never grouped with another precision.

The numbers (is a bf16 run as close to float64 as bf16 allows) are tests/test_parity.py's; a real run in
bf16 end to end is here.
"""

import json

import numpy as np
import pytest

from mnist_bench.bench import cli
from mnist_bench.bench.run.harness import RunSpec
from mnist_bench.common import precision as numeric
from mnist_bench.common import records
from record_factory import make_record
from test_cli_input import assert_no_run_started, run_args, run_cli
from test_harness import run_argv
from test_harness import run_cli as run_cli_process


def test_the_record_schema_names_every_precision():
    assert records.schema()["properties"]["precision"]["enum"] == list(numeric.NAMES)


@pytest.mark.parametrize("name,device,flags,refused", [
    ("fp32", "cpu", [], None),
    ("bf16", "cpu", [], None),  # slow without avx512_bf16, but right: the parity tests need it everywhere
    ("tf32", "cpu", [], "TF32 is a format of NVIDIA tensor cores"),
    ("tf32", "tpu", [], "choose bf16"),
    ("fp16", "cpu", ["avx512f"], "none of avx512_fp16, amx_fp16"),
    ("fp16", "cpu", ["avx512_fp16"], None),
    ("fp16", "tpu", [], "TPUs compute in bfloat16"),
    ("fp16", "gpu", [], None),
])
def test_refusals_say_why(name, device, flags, refused):
    why = numeric.refusal(name, device, flags)
    assert (why is None) == (refused is None), why
    if refused:
        assert refused in why and name in why


def test_unknown_precision_names_the_choices():
    with pytest.raises(numeric.PrecisionRefused, match="fp8.*fp32, bf16, fp16, tf32"):
        numeric.get("fp8")


def test_fp32_run_ids_are_unchanged_and_others_name_their_precision():
    assert RunSpec("torch", "eager", "cpu", 0).run_id == "torch-eager-cpu-s0"  # every record before precisions
    assert RunSpec("torch", "eager", "cpu", 3, precision="bf16").run_id == "torch-eager-cpu-bf16-s3"
    assert RunSpec("torch", "eager", "gpu", 0, 2, precision="tf32").run_id == "torch-eager-gpu-d2-tf32-s0"


def test_a_bf16_record_never_shares_a_group_with_an_fp32_one():
    fp32, old = make_record(), make_record()
    old.pop("precision", None)
    bf16 = {**make_record(), "precision": "bf16"}
    assert records.device_group(fp32) == records.device_group(old) == "cpu"
    assert records.device_group(bf16) == "cpu-bf16"
    assert records.device_group({**bf16, "devices": 2}) == "cpux2-bf16"


@pytest.mark.parametrize("asked,numerics,wrong", [
    ("bf16", {"compute_dtype": "bfloat16", "tf32": False}, None),
    ("bf16", {"compute_dtype": "float32", "tf32": False}, "reports compute dtype 'float32'"),  # silently fp32
    ("fp32", {"compute_dtype": "bfloat16"}, "reports compute dtype 'bfloat16'"),  # a policy left behind
    ("fp32", {"tf32": False}, None),  # a plug-in written before precisions: float32
    ("tf32", {"compute_dtype": "float32", "tf32": False}, "reports TF32 off"),
    ("fp32", {"compute_dtype": "float32", "tf32": True}, "reports TF32 on"),
])
def test_the_framework_read_back_must_match_the_precision(asked, numerics, wrong):
    if wrong is None:
        numeric.check_applied(asked, numerics)
    else:
        with pytest.raises(numeric.PrecisionRefused, match=wrong):
            numeric.check_applied(asked, numerics)


def test_mantissa_rounding_is_bfloat16_rounding():
    # The oracle's bf16 emulation rounds bit patterns itself; ml_dtypes (JAX's bfloat16) is the reference.
    import ml_dtypes

    from mnist_bench.backends.numpy_backend.model import round_mantissa

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(scale=s, size=20000).astype(np.float32) for s in (1e-30, 1e-3, 1.0, 1e20)])
    ties = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, -(1 + 2.0**-8), 2.0**-126 * (1 + 2.0**-8)], np.float32)
    x = np.concatenate([x, ties, np.float32([0.0, -0.0, 3.3895e38])])
    expected = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(round_mantissa(x, 7), expected)
    assert round_mantissa(np.float32([1 + 2.0**-8]), 7)[0] == 1.0  # a tie goes to the even neighbour


def test_tf32_rounding_keeps_ten_bits():
    from mnist_bench.backends.numpy_backend.model import round_mantissa

    assert round_mantissa(np.float32([1 + 2.0**-10, 1 + 2.0**-11, 1 + 3 * 2.0**-11]), 10).tolist() == \
        [1 + 2.0**-10, 1.0, 1 + 2 * 2.0**-10]


# --- the CLI refuses before any run starts -----------------------------------------------------------


@pytest.mark.parametrize("extra,named", [
    (["--precision", "fp8"], "fp8"),
    (["--precision", ""], "expected precisions"),
    (["--precision", "tf32"], "TF32 is a format of NVIDIA tensor cores"),
])
def test_bad_precisions_are_refused(tmp_path, capsys, extra, named):
    code, _, err = run_cli(capsys, *run_args(tmp_path, *extra))
    assert code == 2 and named in err, err
    assert_no_run_started(tmp_path)


def test_data_parallel_runs_are_fp32_only_for_now():
    # (Checked on the plan itself: the CLI first asks for as many CPUs as devices, which a test worker lacks.)
    with pytest.raises(cli.UsageError, match="fp32 only"):
        cli.check_precisions(["torch"], ["fp32", "bf16"], "cpu", devices=[1, 2], hosts=1)
    cli.check_precisions(["torch"], ["fp32"], "cpu", devices=[1, 2], hosts=1)


def test_an_implementation_without_the_precision_is_refused_naming_who_has_it(tmp_path, capsys):
    argv = [a if a != "cpu" else "gpu" for a in run_args(tmp_path, "--precision", "fp16")]
    argv[argv.index("torch")] = "flax-linen"
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert "flax-linen does not train in fp16" in err and "keras-jax" in err and "torch" in err, err
    assert_no_run_started(tmp_path)


def test_precisions_run_side_by_side_within_each_seed():
    args = cli.build_parser().parse_args(["run", "--backends", "torch", "--device", "cpu", "--seeds", "2",
                                          "--precision", "fp32,bf16", "--modes", "eager,tuned"])
    assert [spec.run_id for spec in cli.plan(args)] == [
        "torch-eager-cpu-s0", "torch-eager-cpu-bf16-s0", "torch-tuned-cpu-s0", "torch-tuned-cpu-bf16-s0",
        "torch-eager-cpu-s1", "torch-eager-cpu-bf16-s1", "torch-tuned-cpu-s1", "torch-tuned-cpu-bf16-s1"]


# --- a real run ----------------------------------------------------------------------------------------


def test_a_bf16_run_is_recorded_as_bf16_and_reported_apart(shared_data_dir, tmp_path):
    out = tmp_path / "run"
    # 60 steps: three 20-step chunks, so each run has a steady state to compare (the first chunk is left out).
    proc = run_cli_process(run_argv(shared_data_dir, "--out", out, "--precision", "fp32,bf16", "--report",
                                    backends="torch", steps=60, train_limit=3840), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fp32 = json.loads((out / "torch-eager-cpu-s0.run.json").read_text())
    bf16 = json.loads((out / "torch-eager-cpu-bf16-s0.run.json").read_text())
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert fp32["numerics"]["compute_dtype"] == "float32" and bf16["numerics"]["compute_dtype"] == "bfloat16"
    assert bf16["status"] == "ok"
    report = (out / "report.md").read_text()
    assert "torch/eager/cpu-bf16" in report and "torch/eager/cpu" in report
    assert "What a lower precision buys" in report  # bf16's speed over fp32's, in the first lines
