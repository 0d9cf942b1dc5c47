"""The harness end to end: sweeps, dead and hung workers, divergence, the lock, Ctrl-C, resume and progress.

Every test drives the real ``mnist-bench run`` command on tiny recipes (a few
training steps on a slice of MNIST), in a subprocess where signals or stdout
matter. Worker processes are found by their request file in ``/proc``.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mnist_bench.bench import cli
from mnist_bench.common import records, registry
from record_factory import make_record, write_run_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[")


def run_argv(data_dir: Path, *extra, backends: str = "torch", seeds: int = 1, steps: int = 3,
             train_limit: int = 640) -> list[str]:
    """``mnist-bench run`` on a tiny recipe; ``extra`` adds --out/--resume and anything else."""
    argv = ["run", "--backends", backends, "--device", "cpu", "--preset", "quick",
            "--set", f"train_limit={train_limit}", "--set", "test_limit=200", "--set", f"steps_per_epoch={steps}",
            "--epochs", "1", "--seeds", str(seeds), "--threads", "1", "--data-dir", str(data_dir),
            "--no-require-quiet", *extra]  # the quiet-wait has its own tests (test_contention.py)
    return [str(a) for a in argv]


def _sigint_default() -> None:
    # A shell may start us with SIGINT ignored (background jobs); Python then keeps ignoring it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_cli(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_bench.bench.cli", *argv], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
        preexec_fn=_sigint_default,
    )


def run_cli(argv: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "mnist_bench.bench.cli", *argv], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout,
            preexec_fn=_sigint_default, env=env,
        )
    except subprocess.TimeoutExpired:
        # The harness was killed; its worker has its own session and would outlive it.
        for flag in ("--out", "--resume"):
            if flag in argv:
                kill_processes_mentioning(argv[argv.index(flag) + 1])
        raise


def _command_lines() -> dict[int, list[str]]:
    """pid -> arguments of every live process but this one (zombies have no command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            found[int(entry.name)] = [arg.decode("utf-8", "replace") for arg in raw.split(b"\0") if arg]
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live processes with an argument containing ``text``."""
    return [pid for pid, args in _command_lines().items() if any(text in arg for arg in args)]


def worker_pids(run_dir: Path, run_id: str) -> list[int]:
    request = str(run_dir / f"{run_id}.request.json")
    return [pid for pid, args in _command_lines().items() if "mnist_bench.bench.run.worker" in args and request in args]


def kill_processes_mentioning(text: str) -> None:
    for pid in processes_mentioning(text):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class BackgroundCli:
    """``mnist-bench`` in a subprocess whose stdout lines can be waited for."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = popen_cli(argv)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=lambda: self._stderr.append(self.proc.stderr.read()), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no stdout line matching {pattern!r} within {timeout} s; got:\n{''.join(self.lines)}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait()
                pytest.fail(f"mnist-bench exited ({self.proc.returncode}) before printing {pattern!r}:\n"
                            f"{''.join(self.lines)}\n{''.join(self._stderr)}")
            if re.search(pattern, line):
                return line

    def wait(self, timeout: float) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code, "".join(self.lines), "".join(self._stderr)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def background(tmp_path):
    """Start background CLIs; at teardown kill any still running, and any worker under tmp_path."""
    started: list[BackgroundCli] = []

    def start(argv: list[str]) -> BackgroundCli:
        started.append(BackgroundCli(argv))
        return started[-1]

    yield start
    for item in started:
        item.kill()
    kill_processes_mentioning(str(tmp_path))


def record(run_dir: Path, run_id: str) -> dict:
    """Read and schema-validate one record."""
    return records.read(run_dir / f"{run_id}{records.RECORD_SUFFIX}")


def fingerprint(path: Path) -> tuple[int, bytes]:
    return path.stat().st_mtime_ns, path.read_bytes()


# --- a full sweep: three backends x two seeds ----------------------------------------------------------

SWEEP_IDS = [f"{backend}-{mode}-cpu-s{seed}" for seed in (0, 1)
             for backend, mode in (("torch", "eager"), ("tensorflow", "compiled"), ("flax-linen", "compiled"))]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, shared_data_dir):
    out = tmp_path_factory.mktemp("sweep") / "run"
    done = run_cli(run_argv(shared_data_dir, "--out", out, backends="torch,tensorflow,flax-linen", seeds=2), timeout=840)
    return out, done


@pytest.mark.timeout(900)
def test_sweep_three_backends_two_seeds(sweep):
    out, done = sweep
    assert done.returncode == cli.EXIT_OK, done.stderr[-3000:]
    paths = records.record_paths(out)
    assert sorted(p.name for p in paths) == sorted(f"{run_id}{records.RECORD_SUFFIX}" for run_id in SWEEP_IDS)
    for run_id in SWEEP_IDS:
        rec = record(out, run_id)  # schema-valid, or this raises
        assert rec["status"] == "ok" and rec["error"] is None, rec.get("error")
        backend, mode, _, seed = run_id.rsplit("-", 3)  # backend names may hold a "-"
        assert (rec["backend"], rec["mode"], rec["device"], rec["seed"]) == (backend, mode, "cpu", int(seed[1:]))
        assert rec["recipe"]["train_limit"] == 640 and rec["recipe"]["steps_per_epoch"] == 3
        assert rec["data"]["train_size"] == 640 and rec["data"]["test_size"] == 200
        assert [e["steps"] for e in rec["epochs"]] == [3]
        assert 0 <= rec["final"]["test"]["accuracy"] <= 1
        assert rec["threads"]["requested"] == 1
    # Runs happen one after another, in the planned order.
    starts = [record(out, run_id)["started_at"] for run_id in SWEEP_IDS]
    assert starts == sorted(starts)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["runs"] == SWEEP_IDS
    assert manifest["recipe"]["train_limit"] == 640 and manifest["threads"] == 1
    assert "--backends torch,tensorflow,flax-linen" in manifest["command"]
    # The lock is released: the file is left empty, and another harness could take it now.
    assert (out / ".lock").read_text() == ""


@pytest.mark.timeout(900)
def test_sweep_summary_table(sweep):
    out, done = sweep
    assert done.returncode == cli.EXIT_OK
    assert f"run directory: {out}" in done.stdout and "(6 runs, 1 threads each)" in done.stdout
    table = done.stdout[done.stdout.index("mnist-bench results"):]
    for run_id in SWEEP_IDS:
        row = next((line for line in table.splitlines() if run_id in line), None)
        assert row is not None, f"{run_id} missing from the summary:\n{table}"
        assert "ok" in row
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(900)
def test_plain_progress_lines_when_not_a_terminal(sweep):
    out, done = sweep
    assert not ANSI.search(done.stdout), "no terminal: no escape codes"
    lines = done.stdout.splitlines()
    for index, run_id in enumerate(SWEEP_IDS, start=1):
        assert f"[{index}/6] {run_id}: starting" in lines
        epoch = [line for line in lines if line.startswith(f"  {run_id} epoch 1/1: loss ")]
        assert len(epoch) == 1 and "test accuracy" in epoch[0], lines
        assert any(line.startswith(f"  {run_id} done: ok: test accuracy ") for line in lines)
    # Each run's lines come in order: starting, epoch, done.
    first = SWEEP_IDS[0]
    positions = [next(i for i, line in enumerate(lines) if marker in line)
                 for marker in (f"{first}: starting", f"{first} epoch 1/1", f"{first} done:")]
    assert positions == sorted(positions)


@pytest.mark.timeout(300)
def test_quiet_prints_nothing(tmp_path, shared_data_dir):
    out = tmp_path / "run"
    done = run_cli(run_argv(shared_data_dir, "--out", out, "--quiet", steps=2), timeout=280)
    assert done.returncode == cli.EXIT_OK, done.stderr[-3000:]
    assert done.stdout == ""
    assert record(out, "torch-eager-cpu-s0")["status"] == "ok"


# --- a worker killed with SIGKILL, then --resume --------------------------------------------------------


@pytest.mark.timeout(600)
def test_worker_sigkill_recorded_and_resumed(tmp_path, shared_data_dir, background):
    out = tmp_path / "run"
    # Long enough (~35 s a run at one thread) that the first run is still training when the kill lands.
    options = dict(seeds=2, steps=200, train_limit=12800)
    harness = background(run_argv(shared_data_dir, "--out", out, "--chunk-steps", "5", **options))
    harness.wait_for_line(r"^  torch-eager-cpu-s0 epoch 1 step \d+/200", timeout=240)
    pids = worker_pids(out, "torch-eager-cpu-s0")
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    code, stdout, stderr = harness.wait(timeout=300)

    assert code == cli.EXIT_FAILED, stderr[-3000:]
    failed = record(out, "torch-eager-cpu-s0")
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "WorkerDied"
    assert "killed by SIGKILL" in failed["error"]["message"]
    assert failed["error"]["exit_code"] == -signal.SIGKILL
    assert "epochs" not in failed
    ok = record(out, "torch-eager-cpu-s1")
    assert ok["status"] == "ok" and ok["epochs"][0]["steps"] == options["steps"]
    assert "torch-eager-cpu-s0 done: FAILED: worker killed by SIGKILL" in stdout
    assert "torch-eager-cpu-s0: failed: worker killed by SIGKILL" in stderr
    assert not worker_pids(out, "torch-eager-cpu-s0")

    ok_path = out / f"torch-eager-cpu-s1{records.RECORD_SUFFIX}"
    before = fingerprint(ok_path)
    resumed = run_cli(run_argv(shared_data_dir, "--resume", out, "--chunk-steps", "5", **options), timeout=300)
    assert resumed.returncode == cli.EXIT_OK, resumed.stderr[-3000:]
    assert fingerprint(ok_path) == before, "resume must not touch a finished ok run"
    assert "torch-eager-cpu-s1 kept (resume)" in resumed.stdout
    assert "torch-eager-cpu-s1: starting" not in resumed.stdout
    assert "torch-eager-cpu-s0: starting" in resumed.stdout
    redone = record(out, "torch-eager-cpu-s0")
    assert redone["status"] == "ok" and redone["error"] is None
    assert redone["started_at"] >= failed["finished_at"]


# --- a device that is not there -------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_missing_device_fails_fast(tmp_path, shared_data_dir):
    # This machine has no GPU; where one is visible, JAX is asked for a TPU (PyTorch's spec offers none,
    # and a kind the spec does not offer is refused before any run: tests/test_input_rules.py).
    on_gpu = any(Path("/dev").glob("nvidia[0-9]*"))
    device, backend = ("tpu", "jax") if on_gpu else ("gpu", "torch")
    out = tmp_path / "run"
    argv = run_argv(shared_data_dir, "--out", out, "--quiet", backends=backend)
    argv[argv.index("cpu")] = device
    started = time.monotonic()
    done = run_cli(argv, timeout=280)
    elapsed = time.monotonic() - started
    assert done.returncode == cli.EXIT_FAILED, done.stderr[-3000:]
    assert done.stdout == ""
    rec = record(out, f"{backend}-{registry.spec(backend).default_mode}-{device}-s0")
    assert rec["status"] == "failed"
    assert rec["error"]["type"] == "DeviceUnavailable"
    assert ("GPU" if device == "gpu" else "'tpu'") in rec["error"]["message"]
    # It failed at backend construction: no data loaded, no training.
    for key in ("epochs", "data", "timing", "final"):
        assert key not in rec, key
    assert elapsed < 60, f"took {elapsed:.1f} s"


# --- per-run timeout ------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_per_run_timeout(tmp_path, shared_data_dir):
    out = tmp_path / "run"
    # Thousands of steps: far more than 5 s anywhere.
    argv = run_argv(shared_data_dir, "--out", out, "--timeout", "5", "--quiet", seeds=2, steps=0, train_limit=0)
    argv[argv.index("--epochs") + 1] = "20"
    started = time.monotonic()
    done = run_cli(argv, timeout=280)
    elapsed = time.monotonic() - started
    assert done.returncode == cli.EXIT_FAILED
    first, second = record(out, "torch-eager-cpu-s0"), record(out, "torch-eager-cpu-s1")
    for rec in (first, second):
        assert rec["status"] == "timeout"
        assert rec["error"]["type"] == "Timeout" and "timeout of 5 s" in rec["error"]["message"]
    # The sweep went on to the second run after killing the first, and killed that one on time too.
    assert second["started_at"] >= first["finished_at"]
    assert elapsed < 60, f"took {elapsed:.1f} s for two 5 s timeouts"
    assert not processes_mentioning(str(out))


# --- divergence -----------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_divergence_is_its_own_status(tmp_path, shared_data_dir):
    out = tmp_path / "run"
    done = run_cli(run_argv(shared_data_dir, "--out", out, "--set", "learning_rate=1e6", "--chunk-steps", "2",
                            "--quiet", steps=10), timeout=280)
    assert done.returncode == cli.EXIT_FAILED
    assert done.stdout == ""
    rec = record(out, "torch-eager-cpu-s0")
    assert rec["status"] == "diverged"
    assert rec["error"]["type"] == "Diverged"
    assert "training diverged" in rec["error"]["message"]
    assert "epochs" not in rec and "final" not in rec


# --- two harnesses, one run directory -------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_second_harness_refused_while_locked(tmp_path, shared_data_dir, capsys):
    existing = make_record(seed=0)
    out = write_run_dir(tmp_path, [existing], "run")
    (out / "manifest.json").write_text('{"command": "the first harness"}', encoding="utf-8")
    before = {path.name: fingerprint(path) for path in out.iterdir()}
    with open(out / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("424242")
        lock.flush()
        before[".lock"] = fingerprint(out / ".lock")
        for where in (["--out", out], ["--resume", out]):
            code = cli.main(run_argv(shared_data_dir, *where, "--quiet"))
            err = capsys.readouterr().err
            assert code == cli.EXIT_USAGE
            assert str(out) in err and "in use" in err and "424242" in err
            after = {path.name: fingerprint(path) for path in out.iterdir()}
            assert after == before, "a refused harness must not write into the directory"


@pytest.mark.timeout(600)
def test_sigint_records_interrupted_and_resume_completes(tmp_path, shared_data_dir, background, capsys):
    out = tmp_path / "run"
    # Long enough (~35 s a run at one thread) that the second run is still going when the signal lands.
    options = dict(seeds=2, steps=200, train_limit=12800)
    harness = background(run_argv(shared_data_dir, "--out", out, "--chunk-steps", "5", "--report", **options))
    harness.wait_for_line(r"^  torch-eager-cpu-s1 epoch 1 step \d+/200", timeout=300)
    # The sweep's time left is told after each run; the report already covers the finished run.
    assert any(re.match(r"sweep: 1/2 runs done, about \d+ (s|min) left$", line) for line in harness.lines), harness.lines
    partial = (out / "report.md").read_text(encoding="utf-8")
    assert "1 of 2 planned runs have no record yet" in partial and "torch-eager-cpu-s0" in partial

    # While it runs, a second harness on the same directory is refused, naming the directory and the holder.
    first_ok = out / f"torch-eager-cpu-s0{records.RECORD_SUFFIX}"
    before = fingerprint(first_ok)
    code = cli.main(run_argv(shared_data_dir, "--out", out, "--quiet", **options))
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert str(out) in err and "in use" in err and f"pid {harness.proc.pid}" in err
    assert fingerprint(first_ok) == before

    workers = worker_pids(out, "torch-eager-cpu-s1")
    assert len(workers) == 1, workers
    harness.proc.send_signal(signal.SIGINT)
    code, stdout, stderr = harness.wait(timeout=120)
    assert code == cli.EXIT_INTERRUPTED, stderr[-3000:]
    assert "interrupted" in stderr and f"--resume {out}" in stderr
    assert "Traceback" not in stderr
    assert record(out, "torch-eager-cpu-s0")["status"] == "ok"
    assert "1 of 2 runs did not finish ok (1 interrupted)" in (out / "report.md").read_text(encoding="utf-8")
    interrupted = record(out, "torch-eager-cpu-s1")
    assert interrupted["status"] == "interrupted" and interrupted["error"]["type"] == "KeyboardInterrupt"
    assert not worker_pids(out, "torch-eager-cpu-s1"), "the interrupted run's worker must be gone"
    assert (out / ".lock").read_text() == ""

    resumed = run_cli(run_argv(shared_data_dir, "--resume", out, "--chunk-steps", "5", **options), timeout=300)
    assert resumed.returncode == cli.EXIT_OK, resumed.stderr[-3000:]
    assert fingerprint(first_ok) == before
    assert record(out, "torch-eager-cpu-s1")["status"] == "ok"
    assert "torch-eager-cpu-s0 kept (resume)" in resumed.stdout


# --- misbehaving workers, injected through sitecustomize ------------------------------------------------

FAULTS = """
import atexit, json, os, sys

argv = getattr(sys, "orig_argv", [])
if "mnist_bench.bench.run.worker" in argv:
    request = json.load(open(argv[-1], encoding="utf-8"))
    seed = request["seed"]
    if seed == 0:  # undecodable chatter and an unusable progress line on stdout; the run itself is fine
        os.write(1, b"native library says caf\\xe9 \\xff\\xfe\\n")
        os.write(1, b'@@mnist-bench {"event": "epoch"}\\n')
    elif seed == 1:  # dies at start, without a record
        os.write(2, b"boom from the worker\\n")
        os._exit(7)
    elif seed == 2:  # exits 0, but what it leaves is not a valid record
        def spoil(path=request["record_path"]):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write('{"schema_version": 1, "run_id": "spoilt"}')
        atexit.register(spoil)
        # The worker leaves through os._exit (no atexit), so spoil on that path too.
        real_exit = os._exit
        def spoil_then_exit(code):
            spoil()
            real_exit(code)
        os._exit = spoil_then_exit
"""


@pytest.mark.timeout(300)
def test_misbehaving_workers(tmp_path, shared_data_dir):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FAULTS, encoding="utf-8")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(inject)}
    done = run_cli(run_argv(shared_data_dir, "--out", out, seeds=3), timeout=280, env=env)
    assert done.returncode == cli.EXIT_FAILED, done.stderr[-3000:]
    # Bad bytes and a bad progress line neither kill the progress pump nor the run.
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr, done.stderr
    assert record(out, "torch-eager-cpu-s0")["status"] == "ok"
    assert any(line.startswith("  torch-eager-cpu-s0 epoch 1/1: loss ") for line in done.stdout.splitlines())
    log = (out / "torch-eager-cpu-s0.log").read_text(encoding="utf-8")
    assert "native library says caf\ufffd" in log and "unusable progress line (KeyError" in log

    died = record(out, "torch-eager-cpu-s1")
    assert died["status"] == "failed" and died["error"]["type"] == "WorkerDied"
    assert died["error"]["message"] == "worker exited with code 7 without writing its record"
    assert died["error"]["exit_code"] == 7 and "boom from the worker" in died["error"]["tail"]

    spoilt = record(out, "torch-eager-cpu-s2")  # the harness replaced it with a valid one
    assert spoilt["status"] == "failed" and spoilt["error"]["type"] == "InvalidRecord"
    assert "left an invalid record" in spoilt["error"]["message"] and "torch-eager-cpu-s2" in spoilt["error"]["message"]
    assert spoilt["error"]["exit_code"] == 0
