"""Machine description: shape, types, and no host name anywhere."""

import json
import re
import shutil
import socket
import subprocess

import pytest

from mnist_bench.common.machine import ISA_FLAGS, describe, git_commit

KEYS = {
    "os", "arch", "python", "python_implementation", "cpu_model", "cpu_id", "cpu_flags",
    "logical_cores", "physical_cores", "memory_total_bytes", "gpus",
}


def test_keys_and_types():
    info = describe()
    assert set(info) == KEYS
    assert isinstance(info["os"], str) and info["os"]
    assert isinstance(info["python"], str) and re.fullmatch(r"\d+\.\d+\.\d+.*", info["python"])
    assert info["cpu_model"] is None or isinstance(info["cpu_model"], str)
    assert info["logical_cores"] is None or (isinstance(info["logical_cores"], int) and info["logical_cores"] > 0)
    assert info["physical_cores"] is None or isinstance(info["physical_cores"], int)
    assert info["memory_total_bytes"] is None or info["memory_total_bytes"] > 0
    assert isinstance(info["gpus"], list)
    assert set(info["cpu_flags"]) <= set(ISA_FLAGS)
    if info["arch"] == "x86_64":
        assert info["cpu_id"] and "family" in info["cpu_id"] and "avx" in info["cpu_flags"]
    for gpu in info["gpus"]:
        assert set(gpu) == {"name", "driver_version", "memory_total_mib"}
    json.dumps(info)


def test_no_host_name():
    hostname = socket.gethostname()
    text = json.dumps(describe())
    # A short name like "vm" is a substring of ordinary text; then only an exact value is a leak.
    if len(hostname) >= 4:
        assert hostname.lower() not in text.lower()
    values = []

    def collect(node):
        if isinstance(node, dict):
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)
        elif isinstance(node, str):
            values.append(node.lower())

    collect(json.loads(text))
    assert hostname.lower() not in values


def test_gpus_empty_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert describe()["gpus"] == []


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo, check=True, capture_output=True,
    )


@needs_git
def test_git_commit_clean_then_dirty(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    _git(tmp_path, "init", "-q")
    assert git_commit(tmp_path) is None  # no commits yet
    (tmp_path / "a.txt").write_text("a")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    info = git_commit(tmp_path)
    assert info is not None and re.fullmatch(r"[0-9a-f]{40}", info["commit"])
    assert info["dirty"] is False
    # What a sweep writes under results/ is output, not a change to the code.
    (tmp_path / "results" / "run").mkdir(parents=True)
    (tmp_path / "results" / "run" / "x.run.json").write_text("{}")
    assert git_commit(tmp_path)["dirty"] is False
    (tmp_path / "b.py").write_text("untracked code")
    assert git_commit(tmp_path)["dirty"] is True
    (tmp_path / "b.py").unlink()
    (tmp_path / "a.txt").write_text("b")
    assert git_commit(tmp_path) == {"commit": info["commit"], "dirty": True}


@needs_git
def test_git_commit_outside_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit(tmp_path) is None
    assert git_commit(tmp_path / "missing") is None
