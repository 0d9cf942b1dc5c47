"""Bad input to ``mnist-bench``: exit code 2 and a message naming the bad value and what is allowed.

Everything here fails before a worker starts, so it runs in-process.
"""

import json

import pytest

from mnist_bench.bench import cli
from mnist_bench.common import records, registry
from record_factory import make_record, write_run_dir

pytestmark = pytest.mark.timeout(120)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``main(argv)`` -> (exit code, stdout, stderr); argparse's SystemExit counts as a return."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def run_args(tmp_path, *extra) -> list:
    """A valid tiny ``run`` command line, plus ``extra``; --out under tmp_path so nothing leaks."""
    return ["run", "--backends", "torch", "--device", "cpu", "--preset", "quick", "--quiet",
            "--data-dir", tmp_path / "no-data", "--out", tmp_path / "out", *extra]


def assert_no_run_started(tmp_path):
    assert not (tmp_path / "out").exists(), "bad input must be refused before any run directory is made"


# --- run: argparse-level values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--device", "quantum"], ["'quantum'", "cpu", "gpu", "tpu", "auto"]),
        (["--seeds", "0"], ["--seeds", "'0'", "positive integer"]),
        (["--seeds", "-3"], ["--seeds", "'-3'", "positive integer"]),
        (["--epochs", "0"], ["--epochs", "'0'", "positive integer"]),
        (["--epochs", "two"], ["--epochs", "'two'", "positive integer"]),
        (["--timeout", "0"], ["--timeout", "'0'", "positive number"]),
    ],
    ids=["device", "seeds-zero", "seeds-negative", "epochs-zero", "epochs-text", "timeout-zero"],
)
def test_argparse_values(tmp_path, capsys, extra, named):
    code, out, err = run_cli(capsys, *run_args(tmp_path, *extra))
    assert code == cli.EXIT_USAGE
    for text in named:
        assert text in err, (text, err)
    assert_no_run_started(tmp_path)


# --- run: backends, modes, presets, overrides ----------------------------------------------------------


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--backends", "torch,mxnet"], ["'mxnet'", "torch", "tensorflow", "flax-linen", "flax-nnx"]),
        (["--backends", " , "], ["--backends", "torch", "tensorflow", "flax-linen"]),
        (["--modes", "turbo"], ["turbo", "default", "all", "eager", "compiled", "xla"]),
        (["--modes", "xla"], ["'xla'", "torch"]),  # a real mode, but torch does not offer it
        (["--preset", "huge"], ["'huge'", "default", "quick"]),
        (["--set", "batch_size=0"], ["'batch_size'", "0", "positive integer"]),
        (["--set", "epochs=-1"], ["'epochs'", "-1", "positive integer"]),
        (["--set", "nosuchkey=1"], ["'nosuchkey'", "known keys", "learning_rate", "batch_size"]),
        (["--set", "learning_rate=abc"], ["'learning_rate'", "'abc'", "float"]),
        (["--set", "learning_rate"], ["'learning_rate'", "key=value"]),
        (["--set", "momentum=1.5"], ["'momentum'", "1.5", "[0, 1)"]),
        (["--set", "dataset=cifar"], ["'cifar'", "mnist", "fashion-mnist"]),
    ],
    ids=["backend", "backends-empty", "mode", "mode-not-offered", "preset", "batch-size", "epochs",
         "unknown-key", "lr-text", "no-equals", "momentum", "dataset"],
)
def test_bad_run_values(tmp_path, capsys, extra, named):
    code, out, err = run_cli(capsys, *run_args(tmp_path, *extra))
    assert code == cli.EXIT_USAGE
    assert err.startswith("mnist-bench run: error: "), err
    for text in named:
        assert text in err, (text, err)
    assert "Traceback" not in err
    assert out == ""
    assert_no_run_started(tmp_path)


# --- run: TOML recipes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, named",
    [
        ("epochs = 1\nwarp_speed = 9\n", ["'warp_speed'", "known keys", "epochs"]),
        ("[recipe]\nepochs = 1\nwarp_speed = 9\n", ["'warp_speed'", "known keys"]),
        ('epochs = "3"\n', ["'epochs'", "int", "'3'", "str"]),
        ("batch_size = 0\n", ["'batch_size'", "positive integer"]),
        ("epochs = = 3\n", ["not valid TOML"]),
    ],
    ids=["unknown-key", "unknown-key-in-table", "wrong-type", "bad-value", "syntax"],
)
def test_bad_toml_recipe(tmp_path, capsys, content, named):
    path = tmp_path / "recipe.toml"
    path.write_text(content, encoding="utf-8")
    code, out, err = run_cli(capsys, *run_args(tmp_path, "--recipe", path))
    assert code == cli.EXIT_USAGE
    assert str(path) in err, err  # the message names the file
    for text in named:
        assert text in err, (text, err)
    assert_no_run_started(tmp_path)


def test_good_toml_recipe_is_accepted(tmp_path):
    """The control for the cases above: a valid file in either layout parses, and --set wins over it."""
    from mnist_bench.common.recipe import load_toml

    flat, table = tmp_path / "flat.toml", tmp_path / "table.toml"
    flat.write_text("epochs = 3\nlearning_rate = 0.05\n", encoding="utf-8")
    table.write_text("[recipe]\nepochs = 3\nlearning_rate = 0.05\n", encoding="utf-8")
    assert load_toml(flat) == load_toml(table)
    assert load_toml(flat).epochs == 3 and load_toml(flat).learning_rate == 0.05
    args = cli.build_parser().parse_args(["run", "--recipe", str(flat), "--set", "epochs=2"])
    assert cli.build_recipe(args).epochs == 2


def test_missing_toml_file(tmp_path, capsys):
    path = tmp_path / "nowhere" / "recipe.toml"
    code, out, err = run_cli(capsys, *run_args(tmp_path, "--recipe", path))
    assert code == cli.EXIT_USAGE
    assert str(path) in err and "cannot read" in err
    assert_no_run_started(tmp_path)


def test_unreadable_toml_file(tmp_path, capsys):
    # A directory where a file is expected: unreadable even for root, unlike chmod 000.
    path = tmp_path / "recipe.toml"
    path.mkdir()
    code, out, err = run_cli(capsys, *run_args(tmp_path, "--recipe", path))
    assert code == cli.EXIT_USAGE
    assert str(path) in err and "cannot read" in err
    assert_no_run_started(tmp_path)


def test_toml_not_utf8(tmp_path, capsys):
    path = tmp_path / "recipe.toml"
    path.write_bytes(b"epochs = 1\n# \xff\xfe\n")
    code, out, err = run_cli(capsys, *run_args(tmp_path, "--recipe", path))
    assert code == cli.EXIT_USAGE
    assert str(path) in err
    assert "Traceback" not in err
    assert_no_run_started(tmp_path)


def test_resume_missing_directory(tmp_path, capsys):
    missing = tmp_path / "never-ran"
    code, out, err = run_cli(capsys, "run", "--backends", "torch", "--device", "cpu", "--quiet", "--resume", missing)
    assert code == cli.EXIT_USAGE
    assert str(missing) in err and "no such run directory" in err
    assert not missing.exists()


def test_out_is_a_file(tmp_path, capsys):
    path = tmp_path / "out"
    path.write_text("not a directory", encoding="utf-8")
    code, out, err = run_cli(capsys, *run_args(tmp_path))
    assert code == cli.EXIT_USAGE
    assert str(path) in err and "not a directory" in err
    assert "Traceback" not in err
    assert path.read_text(encoding="utf-8") == "not a directory"


def test_backend_not_installed(tmp_path, capsys, monkeypatch):
    real = registry.missing_packages
    monkeypatch.setattr(registry, "missing_packages",
                        lambda name: ["jax", "flax"] if name == "flax-linen" else real(name))
    code, out, err = run_cli(capsys, *run_args(tmp_path, "--backends", "torch,flax-linen"))
    assert code == cli.EXIT_USAGE
    assert "'flax-linen' is not installed" in err and "missing: jax, flax" in err
    assert "pip install -c constraints.txt -e '.[jax]'" in err
    assert "--backends" in err  # how to leave it out
    assert "torch" not in err.split("error:", 1)[1].split("(or")[0]  # only the missing one is named
    assert_no_run_started(tmp_path)
    # `backends` lists it as not installed, with the same hint, and still succeeds.
    code, out, err = run_cli(capsys, "backends")
    assert code == cli.EXIT_OK
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("flax-linen"))
    linen_modes = lines[first + 1]  # the first line says what it is, the next its modes and state
    assert "Flax Linen" in lines[first] and "not installed" in linen_modes and "pip install" in linen_modes


def test_backend_not_installed_via_find_spec(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "optax" else real(name, *a, **k))
    code, out, err = run_cli(capsys, *run_args(tmp_path, "--backends", "flax-nnx"))
    assert code == cli.EXIT_USAGE
    assert "missing: optax" in err and "pip install" in err
    assert_no_run_started(tmp_path)


def test_former_backend_name_runs_the_renamed_one_with_a_note(tmp_path, capsys, monkeypatch):
    # `jax` was the Flax Linen implementation's name before flax-nnx arrived; commands written then still work.
    real = registry.missing_packages
    monkeypatch.setattr(registry, "missing_packages", lambda name: ["flax"] if name == "flax-linen" else real(name))
    code, out, err = run_cli(capsys, *run_args(tmp_path, "--backends", "jax"))
    assert code == cli.EXIT_USAGE  # stopped before any run by the (faked) missing package, under the new name
    assert "note: backend 'jax' is now called 'flax-linen'" in err
    assert "'flax-linen' is not installed" in err
    assert_no_run_started(tmp_path)


def test_unknown_command(capsys):
    code, out, err = run_cli(capsys, "frobnicate")
    assert code == cli.EXIT_USAGE
    assert "'frobnicate'" in err and "run" in err and "report" in err


# --- report / compare on bad record files --------------------------------------------------------------


@pytest.fixture(params=["corrupt", "foreign", "truncated"])
def bad_run_dir(request, tmp_path):
    """A run directory with two good records and one bad ``*.run.json``; returns (dir, bad path)."""
    run_dir = write_run_dir(tmp_path, [make_record(seed=0), make_record(seed=1)], "runs")
    bad = run_dir / f"torch-eager-cpu-s2{records.RECORD_SUFFIX}"
    if request.param == "corrupt":
        bad.write_text('{"schema_version": 1, "run_id": ', encoding="utf-8")
    elif request.param == "truncated":
        bad.write_bytes(b"")
    else:  # valid JSON, wrong schema
        bad.write_text(json.dumps({"kind": "something else", "rows": [1, 2, 3]}), encoding="utf-8")
    return run_dir, bad


def test_report_strict_names_bad_file(bad_run_dir, tmp_path, capsys):
    run_dir, bad = bad_run_dir
    out_dir = tmp_path / "report-out"
    code, out, err = run_cli(capsys, "report", run_dir, "--out", out_dir, "--strict")
    assert code == cli.EXIT_USAGE
    assert str(bad) in err
    assert "Traceback" not in err
    assert not (out_dir / "report.md").exists()


def test_report_non_strict_warns_and_writes(bad_run_dir, tmp_path, capsys):
    run_dir, bad = bad_run_dir
    out_dir = tmp_path / "report-out"
    code, out, err = run_cli(capsys, "report", run_dir, "--out", out_dir)
    assert code == cli.EXIT_OK
    assert "warning:" in err and str(bad) in err
    md = (out_dir / "report.md").read_text(encoding="utf-8")
    assert (out_dir / "report.html").is_file()
    assert str(out_dir / "report.md") in out
    # The good runs are reported; the bad file is listed as skipped.
    assert "torch-eager-cpu-s0" in md and "torch-eager-cpu-s1" in md
    assert bad.name in md


def test_compare_names_bad_file(bad_run_dir, tmp_path, capsys):
    run_dir, bad = bad_run_dir
    good = write_run_dir(tmp_path, [make_record(seed=0), make_record(seed=1)], "good")
    for base, new in ((good, run_dir), (run_dir, good)):
        code, out, err = run_cli(capsys, "compare", base, new)
        assert code == cli.EXIT_USAGE
        assert str(bad) in err
        assert "Traceback" not in err


def test_report_and_compare_missing_directory(tmp_path, capsys):
    missing = tmp_path / "absent"
    code, out, err = run_cli(capsys, "report", missing, "--strict")
    assert code == cli.EXIT_USAGE and str(missing) in err
    good = write_run_dir(tmp_path, [make_record()], "good")
    code, out, err = run_cli(capsys, "compare", good, missing)
    assert code == cli.EXIT_USAGE and str(missing) in err


def test_export_csv_bad_file_warns_on_stderr(bad_run_dir, tmp_path, capsys):
    run_dir, bad = bad_run_dir
    csv_path = tmp_path / "x.csv"
    code, out, err = run_cli(capsys, "export-csv", run_dir, "--out", csv_path)
    assert code == cli.EXIT_OK
    assert "warning:" in err and str(bad) in err
    assert out.strip() == str(csv_path)  # stdout is only the path: scripts can use it
    assert len(csv_path.read_text(encoding="utf-8").strip().splitlines()) == 1 + 2  # header + the good runs
