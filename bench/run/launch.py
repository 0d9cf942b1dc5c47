"""Starting data-parallel processes, before any framework is imported.

* JAX on CPU gets its N host devices from ``XLA_FLAGS``, which must be set before
  JAX is imported: :func:`framework_env`.
* TensorFlow makes its logical CPU devices itself (in the backend, before its
  runtime starts); nothing to do here.
* PyTorch trains one process per device. The process the harness starts becomes
  local rank 0 and starts the others with :func:`start_local_ranks`, giving each
  the torchrun environment; a process that torchrun started already has it and
  starts nobody. :func:`watch_ranks` ends the run if another rank dies, instead of
  leaving rank 0 blocked in a collective.

Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Callable

from mnist_bench.bench.run import process
from mnist_bench.common import parallel, registry


def one_process_per_device(backend: str) -> bool:
    return registry.spec(backend).one_process_per_device


def framework_env(backend: str, topology: parallel.Topology) -> dict[str, str]:
    """Environment the implementation needs before its framework is imported (its spec's, and for devices)."""
    env = dict(registry.spec(backend).env)
    if registry.spec(backend).virtual_cpu_devices and topology.devices > 1:
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={topology.devices}"])
    return env


def local_rank(backend: str, topology: parallel.Topology) -> tuple[int, int]:
    """(this process's local rank, processes on this host)."""
    if one_process_per_device(backend) and topology.parallel:
        return int(os.environ.get("LOCAL_RANK", "0")), topology.devices
    return 0, 1


def is_reporter() -> bool:
    """Whether this process writes results: every process but local ranks > 0."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


def start_local_ranks(backend: str, topology: parallel.Topology, argv: list[str]) -> list[subprocess.Popen]:
    """In local rank 0: set its torchrun environment and start local ranks 1..devices-1 running ``argv``.

    Nothing to start for frameworks with one process per host, single-device runs,
    or a process torchrun (or this function) already started.
    """
    if not (one_process_per_device(backend) and topology.parallel) or parallel.launched_by_launcher():
        return []
    master = parallel.master_address(topology)
    os.environ.update(parallel.rank_env(topology, 0, master))
    children = []
    for rank in range(1, topology.devices):
        env = {**os.environ, **parallel.rank_env(topology, rank, master)}
        # Same stdout/stderr as rank 0 (the run's log); their progress lines are silenced.
        children.append(process.start(process.python(*argv), env=env, own_group=False))
    return children


def watch_ranks(children: list[subprocess.Popen], on_failure: Callable[[int, int], None]) -> None:
    """Call ``on_failure(local_rank, exit_code)`` from a thread when a child rank exits non-zero."""
    def watch(rank: int, proc: subprocess.Popen) -> None:
        code = proc.wait()
        if code != 0:
            on_failure(rank, code)

    for rank, proc in enumerate(children, start=1):
        threading.Thread(target=watch, args=(rank, proc), daemon=True).start()


def wait_ranks(children: list[subprocess.Popen], timeout: float = 120) -> list[int]:
    """Exit codes of the child ranks, once they finish (they do once the last collective is done)."""
    codes = []
    for proc in children:
        try:
            codes.append(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes
