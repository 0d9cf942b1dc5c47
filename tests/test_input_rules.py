"""Every input is checked before any work starts: exit 2 and a message naming the option and the fix.

Issue 17, finding 4 and the input points of finding 6. Each case here ended, before
these checks, in a traceback (exit 1), a record per run saying the same thing, a
worker crash, or exit 0 with nothing useful. All run in-process: nothing here may
get as far as starting a worker.
"""

import errno
import shutil
import time

import pytest

from mnist_bench.bench import cli, options, validate
from mnist_bench.common import datasets
from test_cli_input import assert_no_run_started, run_args, run_cli
from record_factory import make_record, write_run_dir

pytestmark = pytest.mark.timeout(120)


def refused(capsys, argv, *named) -> str:
    code, out, err = run_cli(capsys, *argv)
    assert code == cli.EXIT_USAGE, (code, out, err)
    assert "Traceback" not in err
    for text in named:
        assert text in err, (text, err)
    return err


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--timeout", "inf"], ["--timeout", "'inf'", "finite"]),
        (["--timeout", "nan"], ["--timeout", "'nan'"]),
        (["--timeout=-inf"], ["--timeout", "'-inf'"]),
        (["--quiet-wait", "inf"], ["--quiet-wait", "'inf'", "finite"]),
        (["--first-seed=-1"], ["--first-seed", "'-1'", "0 to 4294967295"]),
        (["--first-seed", str(2**64)], ["--first-seed", str(2**64), "0 to 4294967295"]),
        (["--first-seed", str(2**32 - 1), "--seeds", "2"], ["--first-seed 4294967295", "--seeds 2", "below 2**32"]),
        (["--seeds", "20000"], ["--seeds 20000", "20,000 runs", "10,000", "--first-seed"]),
        (["--threads", str(options.all_cpus() + 1)], ["--threads", f"only {options.all_cpus()} CPUs",
                                                      f"ask for {options.all_cpus()} or fewer"]),
        (["--threads", "10000"], ["--threads", "10000 threads"]),
    ],
    ids=["timeout-inf", "timeout-nan", "timeout-minus-inf", "quiet-wait-inf", "first-seed-negative",
         "first-seed-64-bit", "last-seed-beyond-32-bit", "seeds-too-many-runs", "threads-one-too-many",
         "threads-ten-thousand"],
)
def test_run_values_refused(tmp_path, capsys, extra, named):
    refused(capsys, run_args(tmp_path, *extra), *named)
    assert_no_run_started(tmp_path)


def test_a_device_the_backend_does_not_offer(tmp_path, capsys):
    """The NumPy oracle runs on the CPU only: --device gpu used to start a worker that could only fail."""
    refused(capsys, run_args(tmp_path, "--backends", "numpy", "--device", "gpu"), "--device gpu",
            "not offered by numpy", "numpy: cpu", "--device auto")
    assert_no_run_started(tmp_path)


def test_huge_seed_count_is_refused_at_once(tmp_path, capsys):
    """A mistyped --seeds used to plan (and allocate) every run before saying anything."""
    started = time.monotonic()
    refused(capsys, run_args(tmp_path, "--seeds", str(10**12)), "--seeds", "below 2**32")
    refused(capsys, run_args(tmp_path, "--seeds", str(2**31)), "--seeds", "10,000")
    assert time.monotonic() - started < 10
    assert_no_run_started(tmp_path)


def test_the_largest_seed_is_accepted_by_the_planner():
    args = cli.build_parser().parse_args(["run", "--backends", "numpy", "--device", "cpu",
                                          "--first-seed", str(2**32 - 2), "--seeds", "2"])
    assert [spec.seed for spec in cli.plan(args)] == [2**32 - 2, 2**32 - 1]


def test_threads_up_to_the_usable_cpus_are_accepted():
    args = cli.build_parser().parse_args(["run", "--threads", str(options.all_cpus())])
    assert args.threads == options.all_cpus()


# --- the data set, checked once before any worker ------------------------------------------------------


def numpy_run(tmp_path, data_dir, *extra) -> list:
    return ["run", "--backends", "numpy", "--device", "cpu", "--preset", "quick", "--quiet", "--no-peak-probe",
            "--no-require-quiet", "--data-dir", data_dir, "--out", tmp_path / "out", *extra]


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--set", "train_limit=0", "--set", "batch_size=60001"], ["batch_size 60001", "60,000 mnist images",
                                                                   "--set batch_size="]),
        (["--set", "train_limit=70000", "--set", "batch_size=65000"], ["batch_size 65000", "60,000"]),
        (["--set", "dataset=fashion-mnist", "--set", "train_limit=0", "--set", "batch_size=70000"],
         ["70000", "fashion-mnist"]),
    ],
    ids=["whole-set", "limit-beyond-the-set", "fashion"],
)
def test_batch_larger_than_the_training_set(tmp_path, capsys, shared_data_dir, extra, named):
    refused(capsys, numpy_run(tmp_path, shared_data_dir, *extra), *named)
    assert_no_run_started(tmp_path)


@pytest.fixture
def no_network(monkeypatch):
    """Every mirror refuses at once (a closed port on 127.0.0.1): a test never reaches the internet."""
    from test_download import closed_port_url

    for name in datasets.DATASET_NAMES:
        monkeypatch.setitem(datasets.MIRRORS, name, (closed_port_url(),))


def test_missing_data_is_one_message_before_any_worker(tmp_path, capsys, no_network):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = refused(capsys, numpy_run(tmp_path, empty), "--data-dir", "'mnist' not found", str(empty),
                  "downloading failed")
    assert err.count("not found") == 1
    assert_no_run_started(tmp_path)


def test_corrupt_data_is_refused_before_any_worker(tmp_path, capsys, shared_data_dir):
    copy = tmp_path / "data" / "mnist"
    shutil.copytree(shared_data_dir / "mnist", copy)
    labels = datasets.dataset_file(copy, datasets.TEST_LABELS)
    labels.unlink()
    (copy / datasets.TEST_LABELS).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01")  # 2 labels announced, 1 given
    refused(capsys, numpy_run(tmp_path, tmp_path / "data"), "--data-dir", datasets.TEST_LABELS)
    assert_no_run_started(tmp_path)


def test_parity_with_no_data(tmp_path, capsys, no_network):
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(capsys, ["parity", "--backends", "numpy", "--data-dir", empty, "--out", tmp_path / "parity"],
            "mnist-bench parity: error: --data-dir", "not found")
    assert not (tmp_path / "parity").exists()


def test_side_by_side_parity_is_for_the_cpu_only(tmp_path, capsys):
    refused(capsys, ["parity", "--backends", "torch", "--device", "gpu", "--side-by-side", "--out", tmp_path / "p"],
            "--side-by-side", "--device gpu", "leave --side-by-side out")
    assert not (tmp_path / "p").exists()


# --- where results go ----------------------------------------------------------------------------------


def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    target = tmp_path / "afile" / "run"
    refused(capsys, run_args(tmp_path, "--out", target), f"--out {target}", "which is a file", "directory")


def test_out_on_a_read_only_file_system(tmp_path, capsys, monkeypatch):
    # Root ignores permission bits, so a read-only mount is simulated where writing is tried.
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(validate.tempfile, "mkdtemp", read_only)
    refused(capsys, run_args(tmp_path), f"--out {tmp_path / 'out'}", "cannot write in", "Read-only file system",
            "writable place")
    assert_no_run_started(tmp_path)


def test_out_where_nothing_can_be_made(tmp_path, capsys):
    refused(capsys, run_args(tmp_path, "--out", "/proc/mnist-bench-run"), "--out /proc/mnist-bench-run",
            "cannot write in /proc")


@pytest.fixture
def run_dir(tmp_path):
    return write_run_dir(tmp_path, [make_record(seed=0)], "runs")


def test_report_out_is_a_file(tmp_path, capsys, run_dir):
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    refused(capsys, ["report", run_dir, "--out", tmp_path / "afile"], "--out", "is a file")


def test_report_on_a_mistyped_directory_creates_nothing(tmp_path, capsys, run_dir):
    typo = tmp_path / "rnus"
    refused(capsys, ["report", typo], f"RUN_DIR {typo}", "no such directory")
    assert not typo.exists()
    refused(capsys, ["report", tmp_path], "holds no *.run.json", "runs")  # the parent: names the run directory in it


@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "proc"])
def test_export_csv_out_unwritable(tmp_path, capsys, run_dir, where):
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    target = {"under-a-file": tmp_path / "afile" / "x.csv", "a-directory": run_dir,
              "proc": "/proc/mnist-bench.csv"}[where]
    refused(capsys, ["export-csv", run_dir, "--out", target], f"--out {target}")


# --- recipe files --------------------------------------------------------------------------------------


def test_deeply_nested_toml_is_a_message(tmp_path, capsys):
    path = tmp_path / "deep.toml"
    path.write_text("epochs = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    refused(capsys, run_args(tmp_path, "--recipe", path), str(path), "nests", "flat table")
    assert_no_run_started(tmp_path)


def test_toml_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfepochs = 3\nlearning_rate = 0.05\n")
    args = cli.build_parser().parse_args(["run", "--recipe", str(path)])
    recipe = cli.build_recipe(args)
    assert (recipe.epochs, recipe.learning_rate) == (3, 0.05)


# --- the tools with their own command lines ------------------------------------------------------------


@pytest.mark.parametrize(
    "module, argv, named",
    [
        ("bench.benchmarks.driver", ["--timeout=-1"], ["--timeout", "'-1'"]),  # a negative timeout hung
        ("bench.benchmarks.driver", ["--timeout", "nan"], ["--timeout", "'nan'"]),
        ("bench.benchmarks.driver", ["--quiet-wait", "nan"], ["--quiet-wait", "'nan'"]),
        ("bench.benchmarks.driver", ["--threads", "10000"], ["--threads", "10000 threads"]),
        ("bench.perf.ceiling", ["--threads", "10000"], ["--threads", "10000 threads"]),
        ("bench.perf.ceiling", ["--batch=-5"], ["--batch", "'-5'"]),  # a NumPy traceback
        ("bench.perf.overhead", ["--quiet-wait", "inf"], ["--quiet-wait", "'inf'"]),
        ("bench.perf.profile", ["--steps", "0"], ["--steps", "'0'"]),  # a traceback after the framework loaded
        ("bench.perf.plain_loops", ["torch", "eager", "--threads", "10000"], ["--threads", "10000 threads"]),
    ],
    ids=["driver-timeout-negative", "driver-timeout-nan", "driver-quiet-wait-nan", "driver-threads",
         "ceiling-threads", "ceiling-batch", "overhead-quiet-wait", "profile-steps", "plain-loops-threads"],
)
def test_tool_values_refused(capsys, module, argv, named):
    import importlib

    tool = importlib.import_module(f"mnist_bench.{module}")
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv)
    assert exit_info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    for text in named:
        assert text in err, (text, err)


def test_endless_recipe_file_is_refused(tmp_path, capsys):
    """--recipe /dev/zero read until memory ran out."""
    refused(capsys, run_args(tmp_path, "--recipe", "/dev/zero"), "/dev/zero", "larger than 1,048,576 bytes")
    assert_no_run_started(tmp_path)


@pytest.mark.parametrize("modes", ["compiled", "all"])
def test_known_broken_mode_under_device_auto(tmp_path, capsys, shared_data_dir, monkeypatch, modes):
    """--device auto on a CPU host is the CPU, so a mode known to be wrong there is refused as with --device cpu.

    It used to start the run, which failed in its worker (exit 1); the device is now resolved before any
    run (bench/run/device_probe.py). A host with no accelerator is assumed, so the test reads the same anywhere.
    """
    from mnist_bench.bench.run import device_probe

    monkeypatch.setattr(device_probe, "no_accelerator", lambda *args: True)
    argv = ["run", "--backends", "torch", "--modes", modes, "--preset", "quick", "--quiet", "--no-peak-probe",
            "--no-require-quiet", "--data-dir", shared_data_dir, "--out", tmp_path / "out"]
    refused(capsys, argv, "torch/compiled on cpu", "what --device auto means", "known to be wrong",
            "--allow-known-broken")
    assert_no_run_started(tmp_path)
