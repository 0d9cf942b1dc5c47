"""Issue 17: a run directory never loses a result, and every planned run ends recorded.

* ``--out`` on a directory that holds records refuses; ``--overwrite`` replaces a
  record only when its successor is written; ``--resume`` checks the request against
  ``manifest.json`` and ``--extend`` may only add runs measured the same way.
* ``--device auto`` is resolved before a run starts, so even a run that never
  finished is recorded (and named) with the device it would have used.
* A burst of signals, a full disk and a killed harness each end cleanly.

Every test drives the real ``mnist-bench run`` on a tiny recipe; where signals
matter, in a subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from mnist_bench.bench import cli
from mnist_bench.common import records
from test_harness import background, fingerprint, record, run_argv, run_cli, worker_pids  # noqa: F401 (a fixture)

STEPS = 2
FIRST = "torch-eager-cpu-s0"


def argv_for(data_dir: Path, *extra, **options) -> list[str]:
    """The tiny sweep every test here plans (no peak probe: the manifest records that setting too)."""
    return run_argv(data_dir, "--no-peak-probe", *extra, **{"steps": STEPS, **options})


def snapshot(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every file but the lock (a refused harness may take and release it)."""
    return {path.name: fingerprint(path) for path in run_dir.iterdir() if path.is_file() and path.name != ".lock"}


def wait_for_worker(run_dir: Path, timeout: float = 60) -> None:
    """Until the first run's worker process exists."""
    deadline = time.monotonic() + timeout
    while not worker_pids(run_dir, FIRST):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shared_data_dir) -> Path:
    """A finished one-run sweep: the directory the rules are tried on (tests work on copies)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    done = run_cli(argv_for(shared_data_dir, "--out", out, "--quiet"), timeout=280)
    assert done.returncode == cli.EXIT_OK, done.stderr[-3000:]
    return out


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


# --- --out, --overwrite, --resume, --extend -------------------------------------------------------------


@pytest.mark.timeout(300)
def test_out_on_a_directory_with_records_refuses_and_names_the_ways_out(copy, shared_data_dir, capsys):
    before = snapshot(copy)
    assert cli.main(argv_for(shared_data_dir, "--out", copy, "--quiet")) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"run directory {copy} already holds 1 run record(s)" in err
    assert f"--resume {copy}" in err and "another --out" in err and f"--out {copy} --overwrite" in err
    assert snapshot(copy) == before, "a refused sweep must not write into the directory"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("extra, difference", [
    (["--set", "learning_rate=0.05"], "recipe.learning_rate: 0.01 in manifest.json, 0.05 requested"),
    (["--chunk-steps", "5"], "chunk_steps: 20 in manifest.json, 5 requested"),
    (["--seeds", "2"], "runs requested but not in manifest.json: torch-eager-cpu-s1"),
    (["--first-seed", "1"], f"runs in manifest.json not requested: {FIRST}"),
])
def test_resume_refuses_a_different_plan_listing_the_differences(copy, shared_data_dir, capsys, extra, difference):
    before = snapshot(copy)
    argv = argv_for(shared_data_dir, "--resume", copy, "--quiet", *extra)
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--resume: this request differs from the plan of {copy}" in err
    assert f"  - {difference}" in err and "--extend" in err
    assert snapshot(copy) == before, "the manifest and records stay as they were"


@pytest.mark.all_cpus  # asks for 2 threads, more than a test worker's share on a 2-CPU machine
@pytest.mark.timeout(300)
def test_resume_lists_every_difference_including_the_device_and_threads(copy, shared_data_dir, capsys):
    argv = argv_for(shared_data_dir, "--resume", copy, "--quiet", "--set", "dropout1=0.5")
    argv[argv.index("--threads") + 1] = "2"
    argv[argv.index("--device") + 1] = "gpu"
    argv.remove("--no-peak-probe")
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    for line in ("recipe.dropout1: 0.25 in manifest.json, 0.5 requested", "threads: 1 in manifest.json, 2 requested",
                 "peak_probe: false in manifest.json, true requested",
                 "runs requested but not in manifest.json: torch-eager-gpu-s0",
                 f"runs in manifest.json not requested: {FIRST}"):
        assert f"  - {line}" in err, err


@pytest.mark.timeout(300)
def test_overwrite_and_extend_never_mix_recipes(copy, shared_data_dir, capsys):
    before = snapshot(copy)
    for where in (["--out", copy, "--overwrite"], ["--resume", copy, "--extend", "--seeds", "2"]):
        assert cli.main(argv_for(shared_data_dir, *where, "--quiet", "--set", "momentum=0.9")) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert "recipe.momentum: 0.5 in manifest.json, 0.9 requested" in err and "another --out" in err
    assert snapshot(copy) == before
    # Records whose manifest is gone cannot be checked: refused too.
    (copy / "manifest.json").unlink()
    assert cli.main(argv_for(shared_data_dir, "--out", copy, "--overwrite", "--quiet")) == cli.EXIT_USAGE
    assert "has no manifest.json" in capsys.readouterr().err


def test_overwrite_and_extend_belong_to_out_and_resume(tmp_path, shared_data_dir, capsys):
    assert cli.main(argv_for(shared_data_dir, "--resume", tmp_path, "--overwrite")) == cli.EXIT_USAGE
    assert "--overwrite re-runs runs in the directory given with --out" in capsys.readouterr().err
    assert cli.main(argv_for(shared_data_dir, "--out", tmp_path / "new", "--extend")) == cli.EXIT_USAGE
    assert "--extend adds runs to the plan of the directory given with --resume" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


@pytest.mark.timeout(400)
def test_extend_adds_runs_and_keeps_the_manifest_history(copy, shared_data_dir):
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    kept = fingerprint(copy / f"{FIRST}{records.RECORD_SUFFIX}")
    done = run_cli(argv_for(shared_data_dir, "--resume", copy, "--extend", "--seeds", "2"), timeout=280)
    assert done.returncode == cli.EXIT_OK, done.stderr[-3000:]
    assert f"{FIRST} kept (resume)" in done.stdout and "torch-eager-cpu-s1: starting" in done.stdout
    assert fingerprint(copy / f"{FIRST}{records.RECORD_SUFFIX}") == kept
    assert record(copy, "torch-eager-cpu-s1")["status"] == "ok"
    extended = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    assert extended["runs"] == [FIRST, "torch-eager-cpu-s1"]
    assert extended["command"] == manifest["command"] and extended["created_at"] == manifest["created_at"]
    assert [s["action"] for s in extended["sessions"]] == ["out", "extend"]
    assert extended["sessions"][1]["added"] == ["torch-eager-cpu-s1"]
    # The extended plan is now what --resume checks against: the same options with --seeds 2 pass.
    again = run_cli(argv_for(shared_data_dir, "--resume", copy, "--seeds", "2"), timeout=280)
    assert again.returncode == cli.EXIT_OK, again.stderr[-3000:]
    assert "starting" not in again.stdout


@pytest.mark.timeout(400)
def test_overwrite_keeps_the_ok_record_until_its_successor_is_written(copy, shared_data_dir, background):
    path = copy / f"{FIRST}{records.RECORD_SUFFIX}"
    earlier = fingerprint(path)
    # Interrupted while its worker runs: the earlier ok record stays, byte for byte.
    harness = background(argv_for(shared_data_dir, "--out", copy, "--overwrite"))
    harness.wait_for_line(rf"^\[1/1\] {FIRST}: starting", timeout=120)
    wait_for_worker(copy)
    harness.proc.send_signal(signal.SIGINT)
    code, stdout, stderr = harness.wait(timeout=120)
    assert code == cli.EXIT_INTERRUPTED, stderr[-3000:]
    assert fingerprint(path) == earlier
    assert f"{FIRST}: interrupted by the user (Ctrl-C or SIGTERM); its earlier ok record" in stdout
    assert not list(copy.glob("*.pending.json"))
    # Run to the end, the new record replaces it.
    done = run_cli(argv_for(shared_data_dir, "--out", copy, "--overwrite"), timeout=280)
    assert done.returncode == cli.EXIT_OK, done.stderr[-3000:]
    replaced = record(copy, FIRST)
    assert replaced["status"] == "ok" and replaced["started_at"] >= json.loads(earlier[1])["finished_at"]
    sessions = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))["sessions"]
    assert [s["action"] for s in sessions] == ["out", "overwrite", "overwrite"]


# --- --device auto is resolved before any run starts ----------------------------------------------------


@pytest.mark.timeout(400)
def test_a_run_that_never_finished_names_the_resolved_device_and_compare_sees_it(finished, tmp_path,
                                                                                  shared_data_dir, capsys):
    # Issue 17's reproduction: a --device auto run killed by its timeout used to be recorded as "auto",
    # land in its own group, and compare said OK.
    new = tmp_path / "new"
    argv = argv_for(shared_data_dir, "--out", new, "--timeout", "1", "--quiet")
    argv[argv.index("--device") + 1] = "auto"
    done = run_cli(argv, timeout=300)
    assert done.returncode == cli.EXIT_FAILED, done.stderr[-3000:]
    dead = record(new, FIRST)  # named with the resolved device, or this raises
    assert dead["status"] == "timeout" and dead["device"] == "cpu"
    assert json.loads((new / "manifest.json").read_text(encoding="utf-8"))["runs"] == [FIRST]
    assert not list(new.glob("*auto*"))
    assert cli.main(["compare", str(finished), str(new)]) == 1
    out = capsys.readouterr().out
    assert "torch/eager/cpu seed 0: base finished ok but new run(s) ended timeout" in out
    assert out.splitlines()[-1].startswith("REGRESSED")


# --- signals, a full disk, a killed harness -------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_burst_of_signals_still_records_the_run_in_flight(tmp_path, shared_data_dir, background):
    out = tmp_path / "run"
    harness = background(argv_for(shared_data_dir, "--out", out, seeds=2))
    harness.wait_for_line(rf"^\[1/2\] {FIRST}: starting", timeout=120)
    wait_for_worker(out)  # in flight
    # Ctrl-C held down, and a scheduler's TERM: a signal every 2 ms until the harness is gone, so that
    # some land while it kills the worker and writes the record.
    sent = 0
    while harness.proc.poll() is None and sent < 5000:
        try:
            os.kill(harness.proc.pid, (signal.SIGINT, signal.SIGTERM)[sent % 2])
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(0.002)
    code, _, stderr = harness.wait(timeout=60)
    assert sent >= 3, "the harness must have been sent a burst, not one signal"
    assert code == cli.EXIT_INTERRUPTED, stderr[-3000:]
    assert "Traceback" not in stderr and f"--resume {out}" in stderr
    interrupted = record(out, FIRST)
    assert interrupted["status"] == "interrupted" and interrupted["error"]["type"] == "KeyboardInterrupt"
    assert not (out / f"torch-eager-cpu-s1{records.RECORD_SUFFIX}").exists(), "the next run never started"
    assert not worker_pids(out, FIRST)


def _disk_full_for(monkeypatch, suffix: str) -> None:
    """``records.write_atomic`` fails as a full disk does, for paths ending in ``suffix``."""
    real = records.write_atomic

    def write(path, document):
        if str(path).endswith(suffix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, document)

    monkeypatch.setattr(records, "write_atomic", write)


@pytest.mark.timeout(300)
def test_a_record_the_disk_refuses_stops_the_sweep_naming_the_file_and_the_unrecorded_runs(
        tmp_path, shared_data_dir, monkeypatch, capsys):
    _disk_full_for(monkeypatch, records.RECORD_SUFFIX)
    out = tmp_path / "run"
    # A 1 s timeout: the harness itself writes the run's (timeout) record, and the disk refuses it.
    code = cli.main(argv_for(shared_data_dir, "--out", out, "--timeout", "1", "--quiet", seeds=2))
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert f"could not write {out / (FIRST + records.RECORD_SUFFIX)}: [Errno 28 ENOSPC] No space left" in err
    assert f"runs without a record (2): {FIRST}, torch-eager-cpu-s1" in err and f"--resume {out}" in err
    assert "Traceback" not in err
    assert not (out / "torch-eager-cpu-s1.log").exists(), "the sweep stops at the first record it cannot write"


@pytest.mark.timeout(120)
def test_a_manifest_the_disk_refuses_stops_before_any_run(tmp_path, shared_data_dir, monkeypatch, capsys):
    _disk_full_for(monkeypatch, "manifest.json")
    out = tmp_path / "run"
    assert cli.main(argv_for(shared_data_dir, "--out", out, "--quiet", seeds=2)) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert f"could not write {out / 'manifest.json'}: [Errno 28 ENOSPC]" in err
    assert f"runs without a record (2): {FIRST}, torch-eager-cpu-s1" in err
    assert not list(out.glob("*.log"))


@pytest.mark.timeout(300)
def test_a_killed_harness_takes_its_worker_with_it(tmp_path, shared_data_dir, background):
    out = tmp_path / "run"
    # One long epoch (900 steps of the full training set, a minute or more at one thread) and no chunk
    # boundary before its end: once built, the worker writes nothing, so only noticing its parent is gone
    # can stop it early.
    harness = background(argv_for(shared_data_dir, "--out", out, "--chunk-steps", "1000", steps=900,
                                  train_limit=0))
    harness.wait_for_line(rf"^\[1/1\] {FIRST}: starting", timeout=120)
    wait_for_worker(out)
    time.sleep(10)  # past its start-up and its "built" line: training, silent
    workers = worker_pids(out, FIRST)
    assert workers, "the worker ended before the harness was killed; the test proves nothing"
    harness.proc.kill()
    harness.proc.wait()
    deadline = time.monotonic() + 5
    while worker_pids(out, FIRST):
        assert time.monotonic() < deadline, "the worker outlived its harness by more than 5 s"
        time.sleep(0.1)


def test_stop_once_raises_on_the_first_signal_and_ignores_the_rest():
    from mnist_bench.bench.run import interrupts

    before = {number: signal.getsignal(number) for number in interrupts.SIGNALS}
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts.stop_once():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler runs here
        # The rest of the burst changes nothing: ignored, not a second KeyboardInterrupt.
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            os.kill(os.getpid(), number)
        time.sleep(0.1)
        assert all(signal.getsignal(number) is signal.SIG_IGN for number in interrupts.SIGNALS)
        # Left without an interrupt, it puts the previous handlers back.
        for number, handler in before.items():
            signal.signal(number, handler)
        with interrupts.stop_once():
            assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        assert {number: signal.getsignal(number) for number in interrupts.SIGNALS} == before
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


@pytest.mark.timeout(300)
def test_the_device_probe_asks_the_framework_in_its_own_process(monkeypatch, tmp_path):
    from mnist_bench.bench.run import device_probe, process
    from mnist_bench.bench.run.harness import RunSpec

    answer = device_probe.probe("torch", "eager", 1)  # a real probe process: the framework never enters this one
    assert answer in ("cpu", "gpu", "tpu")
    if device_probe.no_accelerator():
        assert answer == "cpu"
    # Where no accelerator node exists, or the spec offers the CPU only, nothing needs asking.
    (tmp_path / "dev").mkdir()
    assert device_probe.no_accelerator(tmp_path / "dev") is sys.platform.startswith("linux")
    (tmp_path / "dev" / "nvidia0").touch()
    assert device_probe.no_accelerator(tmp_path / "dev") is False

    def no_process(*args, **kwargs):
        raise AssertionError("no probe process was needed")

    monkeypatch.setattr(process, "run", no_process)
    assert device_probe.probe("numpy", "eager", 1) == "cpu"
    monkeypatch.setattr(device_probe, "no_accelerator", lambda: True)
    specs = [RunSpec("torch", "eager", "auto", 0), RunSpec("jax", "compiled", "gpu", 0)]
    assert [spec.device for spec in device_probe.resolve(specs, 1)] == ["cpu", "gpu"]
