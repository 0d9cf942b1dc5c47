"""What a process that runs a framework does first: pin its CPUs, set thread counts and choose the device.

:func:`configure_process` must run before any framework is imported: several read
their thread counts and environment only at start. The worker, the parity probes,
the benchmark suite and the perf tools all call it, so each is pinned and threaded
exactly as a harness run is. Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import os

from mnist_bench.bench.run import launch
from mnist_bench.common import parallel, registry
from mnist_bench.common.interface import DeviceUnavailable


def thread_env(threads: int) -> dict[str, str]:
    """The variables that give every framework (and its BLAS) ``threads`` threads."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
             "TF_NUM_INTEROP_THREADS")
    return {name: str(threads) for name in names}


def configure_process(threads: int, device: str, backend: str | None = None,
                      topology: parallel.Topology = parallel.SINGLE) -> dict:
    """Pin the process to ``threads`` CPUs and tell every framework the same count.

    A data-parallel PyTorch run has one process per device: each gets an equal,
    disjoint share of the ``threads`` CPUs. JAX's virtual CPU devices are set here.
    Returns the record's ``threads`` block.
    """
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    rank, ranks = launch.local_rank(backend, topology) if backend else (0, 1)
    if ranks > 1:
        cpus = parallel.cpu_share(cpus, rank, ranks)
        threads = len(cpus)
    os.sched_setaffinity(0, cpus)
    env = {
        **thread_env(threads),
        # Without a named backend (a process that may import several), every implementation's own.
        **(launch.framework_env(backend, topology) if backend else registry.all_env()),
    }
    os.environ.update(env)
    info = {"requested": threads, "affinity": cpus, "env": env}
    if ranks > 1:
        info["processes_per_host"] = ranks
    return info


def resolve_device(backend_cls, recipe, device: str, mode: str) -> str:
    """``device``, where ``auto`` becomes the first of gpu, tpu, cpu that the framework can see."""
    if device != "auto":
        return device
    for kind in ("gpu", "tpu"):
        try:
            backend_cls(recipe.replace(init="native"), device=kind, mode=mode, seed=0)
            return kind
        except DeviceUnavailable:
            continue
    return "cpu"
