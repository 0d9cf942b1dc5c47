"""The SLURM executor against a real cluster, two slurmd on this machine (tests/slurm_cluster.py; never mocked,
never skipped)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster as slurm

from mnist_bench.common import records

REPO_ROOT = Path(__file__).resolve().parent.parent


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_cluster_runs_batch_jobs_and_steps(slurm_cluster, tmp_path):
    out = tmp_path / "hostname.out"
    submitted = slurm_cluster.run("sbatch", "--parsable", "--wait", "-o", str(out), "--wrap", "hostname", timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    assert out.read_text().strip() == os.uname().nodename.split(".")[0]
    step = slurm_cluster.run("srun", "-N1", "-n1", "printenv", "SLURM_JOB_ID", timeout=60)
    assert step.returncode == 0, step.stderr
    assert int(step.stdout.strip()) > int(submitted.stdout.strip().split(";")[0])


def test_stop_ends_exactly_the_daemons_it_started(tmp_path):
    cluster = slurm.start(tmp_path / "cluster")
    pids = cluster.pids()
    assert sorted(name for name, _ in pids) == ["munged", "slurmctld", "slurmd", "slurmd"]  # a slurmd per node
    for name, pid in pids:
        assert open(f"/proc/{pid}/comm").read().strip() == name  # the daemon itself, not a wrapper
    assert slurm.stop(cluster) == ""
    assert all(_wait_gone(pid) for _, pid in pids)
    assert not (cluster.directory / "pids").exists()


# --- mnist-bench run --executor slurm against the cluster -------------------------------------------------------

def run_argv(data_dir, out, *extra, backends="torch", seeds=2, train_limit=640, epochs=1, chunk_steps=20):
    """``mnist-bench run`` on a small recipe, one thread per run, each run a SLURM job of the test cluster."""
    argv = ["run", "--executor", "slurm", "--backends", backends, "--device", "cpu", "--preset", "quick",
            "--set", f"train_limit={train_limit}", "--set", "test_limit=200", "--epochs", str(epochs),
            "--seeds", str(seeds), "--threads", "1", "--chunk-steps", str(chunk_steps), "--data-dir", str(data_dir),
            "--no-require-quiet", *extra]  # the quiet-wait has its own tests (test_contention.py)
    return [str(a) for a in [*argv, *(["--out", out] if out else [])]]


def cli(argv, timeout=600):
    return subprocess.run([sys.executable, "-m", "mnist_bench.bench.cli", *argv], cwd=REPO_ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def popen_cli(argv):
    return subprocess.Popen([sys.executable, "-m", "mnist_bench.bench.cli", *argv], cwd=REPO_ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_records(run_dir: Path) -> dict[str, dict]:
    return {path.name.removesuffix(records.RECORD_SUFFIX): records.read(path)
            for path in records.record_paths(run_dir)}


def wait_for_step(run_dir: Path, proc, timeout=180) -> str:
    """The run id of the first run whose node reported a training step (it is mid-run then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for path in run_dir.glob("*.progress.jsonl"):
            if '"event": "step"' in path.read_text():
                return path.name.removesuffix(".progress.jsonl")
        time.sleep(0.2)
    raise AssertionError(f"no run of {run_dir} reached a training step in {timeout} s")


def running_job(run_dir: Path, run_id: str, cluster) -> str:
    """The job id the node of ``run_id`` runs under (from the request the node wrote)."""
    request = json.loads((run_dir / f"{run_id}.request.json").read_text())
    job_id = request["executor"]["job_id"]
    listed = cluster.run("squeue", "--array", "-h", "-o", "%i %T", "-j", job_id).stdout.split()
    assert listed == [job_id, "RUNNING"], listed
    return job_id


def test_sweep_through_slurm_gives_the_local_records_plus_job_and_node(slurm_cluster, shared_data_dir, tmp_path):
    done = cli(run_argv(shared_data_dir, tmp_path / "slurm", "--report", backends="torch,flax-linen",
                        train_limit=1280))
    assert done.returncode == 0, done.stderr + done.stdout
    report = (tmp_path / "slurm" / "report.md").read_text()
    assert "flax-linen" in report and "torch" in report
    found = read_records(tmp_path / "slurm")
    assert sorted(found) == ["flax-linen-compiled-cpu-s0", "flax-linen-compiled-cpu-s1",
                             "torch-eager-cpu-s0", "torch-eager-cpu-s1"]
    node = os.uname().nodename.split(".")[0]
    assert all(r["status"] == "ok" and r["executor"]["kind"] == "slurm" and r["executor"]["node"] == node
               for r in found.values()), {k: (r["status"], r.get("executor")) for k, r in found.items()}
    assert len({r["executor"]["job_id"] for r in found.values()}) == 4
    assert "submitted as SLURM job" in done.stdout
    # The same run on this machine, locally: the same record, but for where it ran.
    local = cli([a if a != "slurm" else "local" for a in run_argv(shared_data_dir, tmp_path / "local", seeds=1,
                                                                  train_limit=1280)])
    assert local.returncode == 0, local.stderr
    mine, theirs = found["torch-eager-cpu-s0"], read_records(tmp_path / "local")["torch-eager-cpu-s0"]
    assert set(mine) - set(theirs) == {"executor"} and set(theirs) <= set(mine)
    assert mine["final"] == theirs["final"]  # same seed, same data order, one thread: the same model
    assert mine["threads"]["requested"] == theirs["threads"]["requested"] == 1


def test_scancel_mid_run_records_slurms_reason_and_resume_resubmits_only_it(slurm_cluster, shared_data_dir, tmp_path):
    out = tmp_path / "run"
    argv = run_argv(shared_data_dir, out, "--no-peak-probe", train_limit=6400, chunk_steps=5)  # 100 steps
    proc = popen_cli(argv)
    victim = wait_for_step(out, proc)
    job_id = running_job(out, victim, slurm_cluster)
    assert slurm_cluster.run("scancel", job_id).returncode == 0
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr  # a failed run
    found = read_records(out)
    cancelled = found.pop(victim)
    assert cancelled["status"] == "failed", cancelled
    assert cancelled["error"]["type"] == "SlurmCancelled"
    assert f"SLURM job {job_id}" in cancelled["error"]["message"] and "CANCELLED" in cancelled["error"]["message"]
    assert cancelled["executor"]["state"] == "CANCELLED" and cancelled["executor"]["job_id"] == job_id
    [(other_id, other)] = found.items()
    assert other["status"] == "ok", other
    # --resume: a new job for the cancelled run only; the ok one is kept as it was.
    resumed = cli([a if a != "--out" else "--resume" for a in argv])
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert resumed.stdout.count("submitted as SLURM job") == 1 and f"{victim}: submitted" in resumed.stdout
    after = read_records(out)
    assert after[victim]["status"] == "ok" and after[victim]["executor"]["job_id"] != job_id
    assert after[other_id] == other


def test_sigterm_cancels_the_sweeps_jobs_and_records_them_interrupted(slurm_cluster, shared_data_dir, tmp_path):
    out = tmp_path / "run"
    proc = popen_cli(run_argv(shared_data_dir, out, "--no-peak-probe", train_limit=6400, epochs=2, chunk_steps=5))
    victim = wait_for_step(out, proc)
    job_id = running_job(out, victim, slurm_cluster)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    found = read_records(out)
    assert len(found) == 2 and all(r["status"] == "interrupted" for r in found.values()), found
    assert "cancelled its job" in found[victim]["error"]["message"]
    assert found[victim]["executor"]["job_id"] == job_id
    left = slurm_cluster.run("squeue", "--array", "-h", "-o", "%i").stdout.split()
    assert not left, f"jobs left in the queue: {left}"


def test_a_job_over_its_time_limit_gets_a_timeout_record(slurm_cluster, shared_data_dir, tmp_path):
    out = tmp_path / "run"
    # A 1-minute SLURM limit on a run that needs several; --timeout stays far above it, so SLURM ends it.
    done = cli(run_argv(shared_data_dir, out, "--no-peak-probe", "--sbatch=--time=1", "--timeout", "3000",
                        seeds=1, train_limit=60000, epochs=3))
    assert done.returncode == 1, done.stderr + done.stdout
    [found] = read_records(out).values()
    assert found["status"] == "timeout", found
    assert found["executor"]["state"] == "TIMEOUT" and "TimeLimit" in found["error"]["message"]


def test_a_job_that_never_reaches_the_run_directory_says_it_must_be_shared(slurm_cluster, tmp_path):
    # A job that fails before writing anything, as one on a node that does not share the run directory does.
    from mnist_bench.bench.run import harness, progress, record, slurm_executor
    from mnist_bench.common.recipe import PRESETS

    submitted = slurm_cluster.run("sbatch", "--parsable", "--wait", "-o", "/dev/null", "--wrap", "exit 7", timeout=60)
    job_id = submitted.stdout.strip()
    spec = harness.RunSpec("torch", "eager", "cpu", 0)
    config = harness.SweepConfig(specs=(spec,), recipe=PRESETS["quick"], run_dir=tmp_path, threads=1,
                                 timeout_s=60, command="test")
    item = slurm_executor.Tracked(spec, job_id, (0, 1), record.now())
    found = slurm_executor.settle(item, config, progress.QuietDisplay(), record.mnist_bench_info())
    assert found == records.read(harness.record_path(tmp_path, spec))
    assert found["status"] == "failed" and found["executor"]["state"] == "FAILED", found
    assert found["error"]["type"] == "SlurmFailed" and "exit code 7:0" in found["error"]["message"]
    assert "must be on a filesystem the nodes share" in found["error"]["message"]


def test_slurm_options_need_the_slurm_executor(tmp_path):
    done = cli(["run", "--backends", "torch", "--partition", "gpu", "--out", str(tmp_path / "x")], timeout=60)
    assert done.returncode == 2 and "--partition is a SLURM option: add --executor slurm" in done.stderr
    done = cli(["run", "--executor", "slurm", "--backends", "torch", "--sbatch", "exclusive",
                "--out", str(tmp_path / "y")], timeout=60)
    assert done.returncode == 2 and "--sbatch=--exclusive" in done.stderr


def test_the_schema_checks_the_executor_block():
    from record_factory import make_record

    good = make_record("torch", seed=0)
    records.validate({**good, "executor": {"kind": "slurm", "job_id": "12_3", "node": "n1"}})
    with pytest.raises(records.RecordError, match="job_id"):
        records.validate({**good, "executor": {"kind": "slurm", "job_id": "twelve"}})


# --- multi-host runs: one job of two nodes, each host placed by SLURM ---------------------------------------------

def test_a_two_host_run_is_one_job_on_two_nodes_each_host_placed_by_slurm(slurm_cluster, shared_data_dir, tmp_path):
    out = tmp_path / "run"
    done = cli(run_argv(shared_data_dir, out, "--hosts", "2", "--partition", slurm.HOSTS_PARTITION, "--no-peak-probe",
                        backends="torch,flax-linen,tensorflow", seeds=1))
    assert done.returncode == 0, done.stderr + done.stdout
    nodes = slurm_cluster.nodes
    assert len(nodes) == 2, nodes
    found = read_records(out)
    assert sorted(found) == ["flax-linen-compiled-cpu-d2-s0", "tensorflow-compiled-cpu-d2-s0", "torch-eager-cpu-d2-s0"]
    for run_id, host0 in found.items():
        # Host 1 writes its own record, as on its own machine, where no reader takes it for a second result.
        host1 = records.read(out / "host-1" / f"{run_id}{records.RECORD_SUFFIX}")
        for rank, r in enumerate((host0, host1)):
            assert r["status"] == "ok", (run_id, rank, r.get("error"))
            assert (r["hosts"], r["devices"], r["host_rank"]) == (2, 2, rank)
            assert r["executor"]["nodes"] == nodes and r["executor"]["node"] == nodes[rank]
        assert host0["executor"]["job_id"] == host1["executor"]["job_id"]
        assert host0["final"]["test"] == host1["final"]["test"]  # one model, replicated on both hosts
        # What the frameworks were told: host 0's address as SLURM reaches it (NodeAddr, not its name).
        told = [json.loads((directory / f"{run_id}.request.json").read_text())["topology"]
                for directory in (out, out / "host-1")]
        assert [t["host_rank"] for t in told] == [0, 1] and told[0]["coordinator"] == told[1]["coordinator"]
        assert told[0]["coordinator"].startswith("127.0.0.1:")


def test_a_hosts_place_is_read_from_slurm_and_a_layout_it_cannot_use_is_named(slurm_cluster):
    from mnist_bench.bench.run import slurm_hosts

    nodes = slurm_cluster.nodes
    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": ",".join(nodes), "SLURM_JOB_ID": "5003",
           "SLURMD_NODENAME": nodes[1]}
    where = slurm_hosts.place(2, env)
    assert (where.host_rank, where.nodes) == (1, tuple(nodes))
    assert where.addresses == ("127.0.0.1", "127.0.0.1")  # the test cluster's NodeAddr for both nodes
    assert where.coordinator == "127.0.0.1:20012"  # 20000 + 4 x (5003 mod 5000)
    # TensorFlow's workers: the ports after the coordinator's, one each, as both nodes share an address here.
    assert json.loads(where.tf_config()) == {"cluster": {"worker": ["127.0.0.1:20013", "127.0.0.1:20014"]},
                                             "task": {"type": "worker", "index": 1}}
    with pytest.raises(slurm_hosts.PlacementError, match="SLURM gave 4 task.*on 2 node"):
        slurm_hosts.place(2, {**env, "SLURM_NTASKS": "4"})
    with pytest.raises(slurm_hosts.PlacementError, match=rf"task 1 runs on {re.escape(nodes[0])}\b.*--distribution"):
        slurm_hosts.place(2, {**env, "SLURMD_NODENAME": nodes[0]})
    with pytest.raises(slurm_hosts.PlacementError, match="SLURM_PROCID, SLURM_NTASKS"):
        slurm_hosts.place(2, {})


def test_under_slurm_a_hosts_rank_and_the_coordinator_are_not_given_by_hand(tmp_path):
    for given in (["--coordinator", "10.0.0.1:29500"], ["--host-rank", "1"]):
        done = cli(["run", "--executor", "slurm", "--backends", "torch", "--device", "cpu", "--hosts", "2", *given,
                    "--out", str(tmp_path / "x")], timeout=60)
        assert done.returncode == 2, done.stderr
        assert f"{given[0]} is for --executor local" in done.stderr and "node list" in done.stderr


def test_a_job_slurm_no_longer_knows_is_recorded_as_unknown_saying_so(slurm_cluster):
    # scontrol forgets a job MinJobAge after it ends, and this cluster keeps no accounting for sacct to ask.
    from mnist_bench.bench.run import slurm_state

    ended = slurm_state.ended("999999")
    assert ended["state"] == "UNKNOWN" and "neither scontrol nor sacct knows" in ended["reason"], ended


def test_a_layout_slurm_got_wrong_is_the_runs_recorded_failure(slurm_cluster, tmp_path, monkeypatch):
    # The host returns without an error, so the job ends COMPLETED and settle() keeps this record, reason included.
    from mnist_bench.bench.run import harness, record, slurm_job
    from mnist_bench.common.recipe import PRESETS

    nodes = slurm_cluster.nodes
    for name, value in {"SLURM_JOB_ID": "77", "SLURM_PROCID": "0", "SLURM_NTASKS": "4",
                        "SLURM_JOB_NODELIST": ",".join(nodes), "SLURMD_NODENAME": nodes[0]}.items():
        monkeypatch.setenv(name, value)
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    spec = harness.RunSpec("torch", "eager", "cpu", 0, hosts=2)
    config = harness.SweepConfig(specs=(spec,), recipe=PRESETS["quick"], run_dir=tmp_path, threads=1,
                                 timeout_s=60, command="test")
    assert slurm_job.run_on_node(spec, config, record.mnist_bench_info()) == "failed"
    found = records.read(harness.record_path(tmp_path, spec))
    assert found["status"] == "failed" and found["error"]["type"] == "SlurmPlacement", found
    assert "SLURM gave 4 task(s) on 2 node(s)" in found["error"]["message"]
    assert found["executor"]["job_id"] == "77"
