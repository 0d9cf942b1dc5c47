"""Data-parallel topology, shared by the CLI, the worker and the data-parallel backends.

Plain Python: no framework is imported here. A :class:`Topology` says how many
devices each host trains on, how many hosts take part, which host this process
runs on and where the coordinator listens. Every framework uses its own engine
(``torch.distributed`` DDP, ``tf.distribute``, ``jax.sharding``); what is shared
is the *meaning*:

* The global batch is the recipe's batch, cut into ``world`` equal shards in
  order: device ``d`` of ``world`` gets images ``[d * B/world, (d + 1) * B/world)``
  of every batch, where devices are numbered host by host. Every process runs
  the same shared pipeline, so the data order is the single-device order.
* The loss is the mean over the global batch, and the gradient is the average of
  the per-device gradients of their shard means, which is the same number.
* Parameters are replicated; every device applies the same update.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import numpy as np


class TopologyError(ValueError):
    """A data-parallel request that cannot work; the message says how to fix it."""


@dataclass(frozen=True)
class Topology:
    """``devices`` per host, on ``hosts`` hosts; this process is on host ``host_rank``."""

    devices: int = 1
    hosts: int = 1
    host_rank: int = 0
    coordinator: str | None = None  # "HOST:PORT" of host 0, needed when hosts > 1

    @property
    def world(self) -> int:
        """Devices in all: the number of shards of each batch."""
        return self.devices * self.hosts

    @property
    def parallel(self) -> bool:
        return self.world > 1


SINGLE = Topology()


def from_mapping(mapping: dict) -> Topology:
    return Topology(int(mapping.get("devices", 1)), int(mapping.get("hosts", 1)),
                    int(mapping.get("host_rank", 0)), mapping.get("coordinator"))


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TopologyError(f"coordinator address {address!r} is not HOST:PORT (e.g. 10.0.0.1:29500)")
    return host, int(port)


def check(topology: Topology, batch_size: int, *, cpus: int | None = None, needs_coordinator: bool = True) -> None:
    """Raise :class:`TopologyError` naming what is wrong and how to fix it.

    ``cpus``: when the run is on CPU, the cores this process may use; each
    virtual CPU device needs one of its own. ``needs_coordinator``: False where a
    scheduler places the hosts (SLURM's node list gives each host its rank and host 0's address).
    """
    t = topology
    if t.devices < 1:
        raise TopologyError(f"--devices must be at least 1, got {t.devices}")
    if t.hosts < 1:
        raise TopologyError(f"--hosts must be at least 1, got {t.hosts}")
    if not 0 <= t.host_rank < t.hosts:
        raise TopologyError(f"--host-rank {t.host_rank} is out of range for --hosts {t.hosts}: use 0 to {t.hosts - 1}")
    if t.hosts > 1 and not t.coordinator and needs_coordinator:
        raise TopologyError(f"--hosts {t.hosts} needs --coordinator HOST:PORT (an address of host 0 that every "
                            "host can reach, with a free port)")
    if t.coordinator:
        split_address(t.coordinator)
    if batch_size % t.world:
        raise TopologyError(
            f"batch size {batch_size} cannot be split evenly across {t.world} devices "
            f"({t.devices} per host x {t.hosts} hosts): the global batch is the recipe's batch, so choose a device "
            f"count that divides it, or --set batch_size=N with N a multiple of {t.world}")
    if cpus is not None and t.devices > cpus:
        raise TopologyError(
            f"--devices {t.devices} on CPU asks for more virtual CPU devices than the {cpus} CPU(s) this run may "
            f"use (--threads); each device needs a core of its own: use --devices {cpus} or fewer")


def shard(x: np.ndarray, index: int, count: int, axis: int = 0) -> np.ndarray:
    """Shard ``index`` of ``count`` equal, contiguous shards along ``axis`` (in order)."""
    size = x.shape[axis] // count
    return np.take(x, np.arange(index * size, (index + 1) * size), axis=axis)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --- torch.distributed processes ------------------------------------------------------------------------
# PyTorch trains one process per device. Each reads the torchrun environment
# (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); processes started by
# torchrun already have it, and `mnist_bench.bench.run.launch.start_local_ranks` gives it to the ones
# mnist-bench starts itself.


def launched_by_launcher() -> bool:
    """True in a process started by torchrun or by :func:`mnist_bench.bench.run.launch.start_local_ranks`."""
    return "LOCAL_RANK" in os.environ and "RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank_env(topology: Topology, local_rank: int, master: tuple[str, int]) -> dict[str, str]:
    return {
        "RANK": str(topology.host_rank * topology.devices + local_rank),
        "LOCAL_RANK": str(local_rank),
        "WORLD_SIZE": str(topology.world),
        "LOCAL_WORLD_SIZE": str(topology.devices),
        "GROUP_RANK": str(topology.host_rank),
        "MASTER_ADDR": master[0],
        "MASTER_PORT": str(master[1]),
    }


def master_address(topology: Topology) -> tuple[str, int]:
    """Where rank 0 listens: the coordinator across hosts, a free loopback port on one host."""
    if topology.hosts > 1:
        return split_address(topology.coordinator or "")
    return "127.0.0.1", free_port()


def cpu_share(cpus: list[int], local_rank: int, local_ranks: int) -> list[int]:
    """The CPUs of one of ``local_ranks`` processes on a host: disjoint, equal shares (at least one)."""
    per = max(1, len(cpus) // local_ranks)
    start = (local_rank * per) % len(cpus)
    return cpus[start:start + per]
