"""Data-parallel training does not change the mathematics (see bench/checks/dp_parity.py, docs/data-parallel.md).

On this CPU machine: JAX with two host devices (Flax, and Keras's keras.distribution), TensorFlow
with two logical CPU devices, PyTorch with two gloo processes -- and each framework's multi-host mode
with two processes over loopback. From the same canonical weights, dropout off,
each must follow the single-device loss at every step. Every probe runs in its
own process(es). A backend that is not installed fails here, it is never skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_bench.bench.checks import dp_parity
from mnist_bench.bench.run.process import child_env
from mnist_bench.common import parallel, registry

# Two devices train on two CPUs: under the test command's workers (tests/machine_share.py) these tests
# take every CPU, beside the other worker's tests.
pytestmark = pytest.mark.all_cpus

# Data-parallel twins are optional: the ones whose spec has one.
BACKENDS = [name for name, spec in registry.specs().items() if spec.offers("data_parallel")]
MULTIHOST_STEPS = 8  # a prefix of the trajectory: the collectives over loopback are what is tested
PROBE_TIMEOUT = 240


@pytest.fixture(scope="module")
def work(shared_data_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dp")
    dp_parity.make_inputs(str(shared_data_dir), root / "inputs.npz")
    return root


def _env(extra: dict | None = None) -> dict:
    env = {**child_env(), "TF_CPP_MIN_LOG_LEVEL": "3", **(extra or {})}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "TF_CONFIG"):  # never inherit a launcher's settings
        if name not in (extra or {}):
            env.pop(name, None)
    return env


def _start(backend: str, work: Path, out: str, *options: str, env: dict | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mnist_bench.bench.checks.dp_parity", backend, str(work / "inputs.npz"), str(work / out),
            "--threads", "2", *options]
    return subprocess.Popen(argv, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")


def _finish(proc: subprocess.Popen, what: str) -> None:
    try:
        output, _ = proc.communicate(timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"{what} did not finish within {PROBE_TIMEOUT} s:\n{output[-4000:]}")
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{output[-4000:]}"


def _load(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


_references: dict[str, dict] = {}


def single_device(backend: str, work: Path) -> dict:
    """The backend's ordinary single-device trajectory, computed once per module."""
    if backend not in _references:
        assert registry.is_available(backend), registry.not_installed_message(backend)
        _finish(_start(backend, work, f"{backend}-d1.npz"), f"{backend} single-device probe")
        _references[backend] = _load(work / f"{backend}-d1.npz")
    return _references[backend]


def _assert_within(diffs: dict[str, float], what: str, checks=tuple(dp_parity.TOLERANCES)) -> None:
    for name in checks:
        tol = dp_parity.TOLERANCES[name]
        assert diffs[name] <= tol.value, (
            f"{what}: {name} differs by {diffs[name]:.3e} > {tol.value:.1e} ({tol.why}; measured at most "
            f"{tol.measured:.1e} when set)")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_devices_follow_the_single_device_trajectory(work, backend):
    reference = single_device(backend, work)
    _finish(_start(backend, work, f"{backend}-d2.npz", "--devices", "2"), f"{backend} two-device probe")
    two = _load(work / f"{backend}-d2.npz")
    assert int(two["world"]) == 2
    assert len(two["losses"]) == len(reference["losses"]) == dp_parity.STEPS
    # Not vacuous: the trajectory really trains, so a wrong average would show at once.
    assert reference["losses"][0] - reference["losses"][-1] > 0.05, reference["losses"]
    _assert_within(dp_parity.differences(reference, two), f"{backend}: 2 devices vs 1")


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}})


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_hosts_over_loopback_train_like_one_process(work, backend):
    reference = single_device(backend, work)
    coordinator = f"127.0.0.1:{parallel.free_port()}"
    tf_ports = [parallel.free_port(), parallel.free_port()]
    procs = []
    for rank in (0, 1):
        env = {"TF_CONFIG": _tf_config(tf_ports, rank)} if backend == "tensorflow" else None
        procs.append(_start(backend, work, f"{backend}-h2-r{rank}.npz", "--hosts", "2", "--host-rank", str(rank),
                            "--coordinator", coordinator, "--steps", str(MULTIHOST_STEPS), env=env))
    for rank, proc in enumerate(procs):
        _finish(proc, f"{backend} host {rank} of 2")
    hosts = [_load(work / f"{backend}-h2-r{rank}.npz") for rank in (0, 1)]
    prefix = {**reference, "losses": reference["losses"][:MULTIHOST_STEPS]}
    for rank, result in enumerate(hosts):
        assert int(result["world"]) == 2 and len(result["losses"]) == MULTIHOST_STEPS
        _assert_within(dp_parity.differences(prefix, result), f"{backend}: host {rank} of 2 vs one process",
                       checks=("loss", "gradients", "trajectory_loss"))
    # Replicated training: both hosts end with the very same weights.
    for name in (k for k in hosts[0] if k.startswith("final/")):
        np.testing.assert_array_equal(hosts[0][name], hosts[1][name], err_msg=name)


def test_shards_are_contiguous_and_in_order():
    batch = np.arange(2 * 64).reshape(2, 64)
    halves = [parallel.shard(batch, i, 2, axis=1) for i in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves, axis=1), batch)
    np.testing.assert_array_equal(halves[1][0], np.arange(32, 64))


@pytest.mark.parametrize("topology, batch, cpus, named", [
    (parallel.Topology(devices=0), 64, None, ["--devices", "at least 1"]),
    (parallel.Topology(devices=3), 64, None, ["batch size 64", "3 devices", "batch_size"]),
    (parallel.Topology(devices=4), 64, 2, ["--devices 4", "2 CPU", "--devices 2 or fewer"]),
    (parallel.Topology(hosts=2), 64, None, ["--hosts 2", "--coordinator"]),
    (parallel.Topology(hosts=2, host_rank=2, coordinator="a:1"), 64, None, ["--host-rank 2", "0 to 1"]),
    (parallel.Topology(hosts=2, coordinator="nohostport"), 64, None, ["'nohostport'", "HOST:PORT"]),
], ids=["zero", "indivisible", "too-many-cpus", "no-coordinator", "rank-range", "bad-address"])
def test_topology_errors_say_what_and_how(topology, batch, cpus, named):
    with pytest.raises(parallel.TopologyError) as caught:
        parallel.check(topology, batch, cpus=cpus)
    for text in named:
        assert text in str(caught.value), (text, str(caught.value))


def test_torch_ranks_get_disjoint_cpus():
    assert [parallel.cpu_share([0, 1, 2, 3], r, 2) for r in range(2)] == [[0, 1], [2, 3]]
    assert [parallel.cpu_share([0, 1], r, 2) for r in range(2)] == [[0], [1]]


# --- the command line -----------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_run_devices_2_records_ok_for_every_backend(tmp_path, shared_data_dir):
    from mnist_bench.common import records
    from test_harness import run_argv, run_cli

    out = tmp_path / "run"
    done = run_cli(run_argv(shared_data_dir, "--out", out, "--devices", "2", "--threads", "2", "--quiet",
                            backends=",".join(BACKENDS), steps=3), timeout=580)
    assert done.returncode == 0, done.stderr
    found = {r["backend"]: r for r in records.read_dirs([out])}
    assert sorted(found) == sorted(BACKENDS)
    for backend, record in found.items():
        assert record["status"] == "ok", record.get("error")
        assert (record["devices"], record["hosts"]) == (2, 1)
        assert record["run_id"] == f"{backend}-{registry.default_mode(backend)}-cpu-d2-s0"
        assert record["device_info"]["count"] == 2, record["device_info"]
        assert record["epochs"][0]["steps"] == 3
    assert found["torch"]["threads"]["processes_per_host"] == 2
    assert "--xla_force_host_platform_device_count=2" in found["flax-linen"]["threads"]["env"]["XLA_FLAGS"]
    assert found["tensorflow"]["device_info"]["engine"] == "tf.distribute.MirroredStrategy"
    assert found["keras-jax"]["device_info"]["engine"] == "keras.distribution.DataParallel"  # Keras's own, not ours
    assert not list(out.glob("*-s0.run.json.*")), "only one record per run: rank 1 must not write"


@pytest.mark.parametrize("extra, named", [
    (["--devices", "0"], ["--devices", "'0'", "positive integer"]),
    (["--devices", "3"], ["batch size 64", "3 devices", "batch_size"]),
    (["--devices", "2", "--set", "batch_size=63"], ["batch size 63", "2 devices"]),
    (["--devices", "4", "--threads", "2"], ["--devices 4", "2 CPU", "--devices 2 or fewer"]),
    (["--hosts", "2", "--coordinator", "127.0.0.1:1", "--device", "auto"], ["--hosts 2", "explicit --device"]),
    (["--hosts", "2"], ["--hosts 2", "--coordinator HOST:PORT"]),
    (["--hosts", "2", "--host-rank", "5", "--coordinator", "h:1"], ["--host-rank 5", "0 to 1"]),
    (["--devices", "2", "--modes", "xla", "--backends", "tensorflow"], ["tensorflow", "compiled", "xla"]),
    (["--devices", "2", "--backends", "numpy"], ["numpy has no data-parallel implementation", "--backends"]),
    # Keras 3.15's keras.distribution runs on JAX only, and op by op it deadlocks (docs/framework-bugs.md).
    (["--devices", "2", "--backends", "keras-torch"], ["keras-torch has no data-parallel implementation"]),
    (["--devices", "2", "--modes", "fit-nojit", "--backends", "keras-jax"], ["keras-jax", "fit only", "fit-nojit"]),
], ids=["zero", "indivisible", "indivisible-batch", "more-than-cpus", "hosts-auto", "no-coordinator",
        "rank-range", "mode", "not-offered", "keras-torch", "keras-op-by-op"])
def test_bad_data_parallel_input_exits_2(tmp_path, capsys, extra, named):
    from mnist_bench.bench import cli
    from test_cli_input import assert_no_run_started, run_args, run_cli

    code, out, err = run_cli(capsys, *run_args(tmp_path, *extra))
    assert code == cli.EXIT_USAGE, (code, err)
    for text in named:
        assert text in err, (text, err)
    assert_no_run_started(tmp_path)


def test_report_shows_scaling_efficiency(tmp_path):
    from mnist_bench.bench.results import report
    from record_factory import make_record, write_run_dir

    one = [make_record("flax-linen", "compiled", seed=s, samples_per_s=1000.0) for s in (0, 1)]
    two = [make_record("flax-linen", "compiled", seed=s, samples_per_s=1500.0, devices=2,
                       run_id=f"flax-linen-compiled-cpu-d2-s{s}") for s in (0, 1)]
    lone = [make_record("torch", "eager", samples_per_s=900.0, devices=2, run_id="torch-eager-cpu-d2-s0")]
    groups = report.group_runs([*one, *two, *lone])
    assert ("flax-linen", "compiled", "cpu") in groups and ("flax-linen", "compiled", "cpux2") in groups
    found = report.scaling(groups)
    assert [(s.key, s.devices) for s in found] == [(("flax-linen", "compiled", "cpux2"), 2)]  # torch has no 1-device run
    assert found[0].efficiency == pytest.approx(0.75)
    paths = report.write_report([write_run_dir(tmp_path / "runs", [*one, *two, *lone])], tmp_path / "out")
    markdown = Path(paths["markdown"]).read_text(encoding="utf-8")
    assert "Scaling" in markdown and "75.0" in markdown and "flax-linen/compiled/cpux2" in markdown
