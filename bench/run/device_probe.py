"""Resolving ``--device auto`` before a sweep starts: ``python -m mnist_bench.bench.run.device_probe BACKEND MODE``.

A run's device is part of its identity: its run id, its record's path and the
configuration ``compare`` matches on. If the worker resolved ``auto`` itself, a run
that timed out or was interrupted before it got that far would be recorded as
``auto`` and never match its finished twin. So the harness asks each backend once
per sweep, in a short process of its own (the framework must not enter the
harness's process), which device kind ``auto`` means, and plans every run with
the answer. No probe is needed for an implementation whose spec offers the CPU only,
nor on a Linux machine with no accelerator device node at all (no GPU or TPU driver
has anything to offer there, so every framework falls back to the CPU).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from mnist_bench.bench.run import process
from mnist_bench.common import registry

PROBE_TIMEOUT_S = 300.0  # a framework import on a busy 2-core machine takes tens of seconds
_ANSWER = "@@device "
# CUDA (nvidia0...), ROCm (kfd), TPU VMs (accel0..., or vfio on newer generations).
ACCELERATOR_NODES = ("nvidia[0-9]*", "kfd", "accel[0-9]*", "vfio/[0-9]*")


class DeviceProbeFailed(RuntimeError):
    """The probe process could not say which device ``auto`` means for a backend."""


def probe(backend: str, mode: str, threads: int) -> str:
    """The device kind ``auto`` resolves to for ``backend`` (gpu, tpu or cpu), asked in a fresh process."""
    if tuple(registry.spec(backend).devices) == ("cpu",):
        return "cpu"
    argv = process.python("-m", "mnist_bench.bench.run.device_probe", backend, mode, str(threads))
    try:
        done = process.run(argv, PROBE_TIMEOUT_S)
    except process.ChildTimeout:
        raise DeviceProbeFailed(f"asking {backend} which device --device auto means took longer than "
                                f"{PROBE_TIMEOUT_S:g} s") from None
    answers = [line[len(_ANSWER):] for line in done.stdout.splitlines() if line.startswith(_ANSWER)]
    if done.returncode != 0 or not answers:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DeviceProbeFailed(f"asking {backend} which device --device auto means failed "
                                f"(exit {done.returncode}): {tail[0]}")
    return json.loads(answers[-1])


def no_accelerator(dev: Path = Path("/dev")) -> bool:
    """True on Linux when no GPU or TPU device node exists: ``auto`` can only mean the CPU."""
    return sys.platform.startswith("linux") and not any(any(dev.glob(pattern)) for pattern in ACCELERATOR_NODES)


def resolve(specs: list, threads: int) -> list:
    """``specs`` (``RunSpec``) with ``device="auto"`` replaced by each backend's answer, one probe per backend."""
    if no_accelerator():
        return [replace(spec, device="cpu") if spec.device == "auto" else spec for spec in specs]
    answers: dict[str, str] = {}
    resolved = []
    for spec in specs:
        if spec.device != "auto":
            resolved.append(spec)
            continue
        if spec.backend not in answers:
            answers[spec.backend] = probe(spec.backend, spec.mode, threads)
        resolved.append(replace(spec, device=answers[spec.backend]))
    return resolved


def main(argv: list[str]) -> int:
    backend, mode, threads = argv[0], argv[1], int(argv[2])
    from mnist_bench.bench.run.process_setup import configure_process, resolve_device
    from mnist_bench.common import recipe as recipes

    configure_process(threads, "auto", backend)  # before the framework is imported, as in a worker
    device = resolve_device(registry.load_backend(backend), recipes.preset("quick"), "auto", mode)
    print(_ANSWER + json.dumps(device), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
