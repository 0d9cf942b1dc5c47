"""What a benchmark ran on: OS, Python, CPU, memory, GPUs and the code's git commit.

Results files are shared, so this deliberately never records the host name
(nor anything from ``platform.uname()``'s ``node``); the hardware facts are
enough to compare runs. Every probe is best-effort: a missing file or command
yields ``None`` or an empty list, never an exception.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Probes must never stall a benchmark run: nvidia-smi can hang on a wedged driver.
COMMAND_TIMEOUT_S = 10


def _run(args: list[str], cwd: str | Path | None = None) -> str | None:
    """stdout of ``args`` if it exits 0 within the timeout, else None."""
    try:
        done = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _cpuinfo_fields(name: str) -> list[str]:
    text = _read("/proc/cpuinfo") or ""
    values = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            values.append(value.strip())
    return values


def _cpu_model() -> str | None:
    models = _cpuinfo_fields("model name")
    # platform.processor() is often just the architecture, but beats nothing.
    return (models[0] if models else platform.processor()) or None


# The vector extensions that decide how fast this model trains on a CPU. "AMD EPYC" names
# hosts from Zen 2 to Zen 4: the same VM kind measured 126 GFLOP/s on a Zen 3 host (no AVX-512)
# and 180-194 on a host with AVX512_BF16, so the record must say which it ran on.
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16", "amx_int8")


def _cpu_id() -> str | None:
    """``AuthenticAMD family 25 model 1 stepping 1``: the CPU generation, where a VM hides the model name."""
    fields = [(_cpuinfo_fields(name) or [None])[0] for name in ("vendor_id", "cpu family", "model", "stepping")]
    if fields[0] is None:
        return None
    return f"{fields[0]} family {fields[1]} model {fields[2]} stepping {fields[3]}"


def cpu_flags() -> list[str]:
    """Which of :data:`ISA_FLAGS` this CPU has (/proc/cpuinfo), in that order."""
    flags = set(((_cpuinfo_fields("flags") or [""])[0]).split())
    return [flag for flag in ISA_FLAGS if flag in flags]


def _physical_cores() -> int | None:
    # A core is one distinct (socket, core id) pair; where the kernel omits
    # these fields (many VMs, ARM) the count is not cheaply knowable.
    sockets = _cpuinfo_fields("physical id")
    cores = _cpuinfo_fields("core id")
    if not cores or len(sockets) != len(cores):
        return None
    return len(set(zip(sockets, cores)))


def _memory_total_bytes() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024  # /proc/meminfo's "kB" is KiB
    return None


def _gpus() -> list[dict[str, Any]]:
    if shutil.which("nvidia-smi") is None:
        return []
    out = _run(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader,nounits",
        ]
    )
    gpus = []
    for line in (out or "").splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 3:
            continue
        name, driver, memory = fields
        gpus.append(
            {
                "name": name,
                "driver_version": driver,
                "memory_total_mib": int(memory) if memory.isdigit() else None,
            }
        )
    return gpus


def describe() -> dict[str, Any]:
    """A JSON-ready description of this machine, without its host name.

    Keys: ``os`` (``platform.platform()``, e.g. ``Linux-6.1.0-x86_64-with-glibc2.36``),
    ``arch`` (``platform.machine()``), ``python`` (version string),
    ``python_implementation``, ``cpu_model`` (``/proc/cpuinfo`` "model name",
    falling back to ``platform.processor()``; None if neither says), ``cpu_id``
    (vendor, family, model and stepping from ``/proc/cpuinfo``, or None),
    ``cpu_flags`` (which of :data:`ISA_FLAGS` the CPU has),
    ``logical_cores`` (``os.cpu_count()``), ``physical_cores`` (distinct
    socket/core pairs in ``/proc/cpuinfo``, else None), ``memory_total_bytes``
    (``/proc/meminfo`` MemTotal, else None) and ``gpus``: a list of
    ``{"name", "driver_version", "memory_total_mib"}`` from ``nvidia-smi``,
    empty when the command is absent or fails.
    """
    return {
        "os": platform.platform(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "cpu_model": _cpu_model(),
        "cpu_id": _cpu_id(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "memory_total_bytes": _memory_total_bytes(),
        "gpus": _gpus(),
    }


def git_commit(repo_dir: str | Path = ".") -> dict[str, Any] | None:
    """The checked-out commit of the git work tree containing ``repo_dir``.

    Returns ``{"commit": <40-hex sha>, "dirty": bool}``, where ``dirty`` means
    ``git status --porcelain`` lists anything outside ``results/`` -- modified, staged or untracked
    files -- i.e. the results may not be reproducible from the commit alone.
    Returns None when ``repo_dir`` is not in a git work tree, the repository has
    no commits yet, or git is not installed.
    """
    commit = _run(["git", "rev-parse", "--verify", "HEAD"], cwd=repo_dir)
    if commit is None:
        return None
    # Result files a sweep writes under results/ are output, not code: they leave the tree clean.
    status = _run(["git", "status", "--porcelain", "--", ":(top)", ":(top,exclude)results"], cwd=repo_dir)
    # If status itself fails, claiming "clean" would be a lie; call it dirty.
    dirty = status is None or bool(status.strip())
    return {"commit": commit.strip(), "dirty": dirty}


if __name__ == "__main__":
    import json

    json.dump({"machine": describe(), "git": git_commit(Path(__file__).resolve().parent.parent)}, sys.stdout, indent=2)
    print()
