"""Data-parallel placement over a one-axis ``jax.sharding.Mesh`` ("data"), for any Flax API.

Across hosts, ``jax.distributed.initialize(coordinator, num_processes, process_id)`` joins the
processes first (on CPU with gloo collectives) and the mesh spans every process's devices.
Parameters and optimiser state are replicated; each batch is split along its first axis
(``P("data")``), device ``d`` holding the ``d``-th contiguous shard. CPU devices come from
``XLA_FLAGS=--xla_force_host_platform_device_count=N``, which the worker sets before JAX is imported.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mnist_bench.common import parallel
from mnist_bench.common.interface import DeviceUnavailable


class DataMesh:
    """The mesh of a data-parallel run, with its two shardings and host <-> global array moves."""

    def __init__(self, kind: str, topology: parallel.Topology) -> None:
        if topology.hosts > 1 and not jax.distributed.is_initialized():
            if kind == "cpu":
                jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(coordinator_address=topology.coordinator, num_processes=topology.hosts,
                                       process_id=topology.host_rank)
        self.mesh = Mesh(np.array(mesh_devices(kind, topology)), ("data",))
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P("data"))

    @property
    def devices(self) -> list:
        return list(self.mesh.devices.flat)

    def put(self, array: np.ndarray, sharding: NamedSharding) -> jax.Array:
        """A global array from a host array every process holds in full; each process fills its own shards."""
        array = np.asarray(array)
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    def replicate(self, tree):
        return jax.tree.map(lambda a: self.put(np.asarray(a), self.replicated), tree)

    def device_info(self, kind: str) -> dict:
        return {"kind": kind, "name": self.devices[0].device_kind, "count": len(self.devices),
                "engine": "jax.sharding NamedSharding over Mesh('data')", "processes": jax.process_count()}


def local(array: jax.Array) -> np.ndarray:
    """A replicated array's value, from this process's first copy (works across hosts)."""
    return np.asarray(array.addressable_data(0))


def mesh_devices(kind: str, topology: parallel.Topology) -> list:
    """The mesh's devices: each process's first ``topology.devices`` of ``kind``, process by process."""
    try:
        found = jax.devices(kind)
    except RuntimeError:
        seen = ", ".join(f"{d.platform}:{d.id}" for d in jax.devices()) or "none"
        raise DeviceUnavailable(f"JAX {jax.__version__} sees no {kind!r} device; devices found: {seen}") from None
    chosen = []
    for process in range(jax.process_count()):
        mine = sorted((d for d in found if d.process_index == process), key=lambda d: d.id)
        if len(mine) < topology.devices:
            hint = (" (on CPU the worker sets XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts; "
                    "set it yourself when you build this backend directly)") if kind == "cpu" else ""
            raise DeviceUnavailable(f"--devices {topology.devices} asks for {topology.devices} {kind} devices per host "
                                    f"but JAX sees {len(mine)} on process {process}{hint}")
        chosen += mine[:topology.devices]
    return chosen
