"""Run records are built here: the fields every record starts with, from the worker or from the harness.

The worker writes a run's record itself (:func:`for_worker`, then training fills it);
the harness writes one only when the worker could not (:func:`for_harness`: a
timeout, a crash, an interrupt, a busy machine). Both start from :func:`base`, with
the schema version of :mod:`mnist_bench.common.records`, so they cannot drift apart.
"""

from __future__ import annotations

import datetime as dt

from mnist_bench.common import contention, records
from mnist_bench.common import precision as numeric


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def mnist_bench_info() -> dict:
    """This package's version and git commit, for every record of a sweep."""
    from importlib.metadata import PackageNotFoundError, version

    from mnist_bench.bench.run.process import REPO_ROOT
    from mnist_bench.common import machine

    try:
        ver = version("mnist-bench")
    except PackageNotFoundError:
        ver = "0+unknown"
    return {"version": ver, "git": machine.git_commit(REPO_ROOT)}


def base(*, run_id: str, backend: str, mode: str, device: str, seed: int, recipe: dict, command: str,
         started_at: str, machine_info: dict, info: dict, devices: int = 1, hosts: int = 1,
         precision: str = numeric.DEFAULT) -> dict:
    """The identity of a run: what ran, where, in which precision, with which recipe and version of mnist-bench."""
    return {
        "schema_version": records.SCHEMA_VERSION,
        "run_id": run_id,
        "backend": backend,
        "mode": mode,
        "precision": precision,
        "device": device,
        "devices": devices,
        "hosts": hosts,
        "seed": seed,
        "recipe": recipe,
        "command": command,
        "started_at": started_at,
        "machine": machine_info,
        "mnist_bench": info,
    }


def for_worker(request: dict) -> dict:
    """The worker's record before it runs anything; it adds the topology, device and results."""
    from mnist_bench.common import machine

    record = base(run_id=request["run_id"], backend=request["backend"], mode=request["mode"],
                  device=request["device"], seed=request["seed"], recipe=request["recipe"],
                  command=request["command"], started_at=now(), machine_info=machine.describe(),
                  info=request["mnist_bench"], precision=request.get("precision", numeric.DEFAULT))
    if request.get("executor"):  # a scheduler's job: which job, on which node
        record["executor"] = request["executor"]
    return record


def for_harness(spec, config, status: str, error: dict, started_at: str, info: dict, machine_info: dict,
                quiet_wait: dict | None = None, executor: dict | None = None) -> dict:
    """The record the harness writes for ``spec`` (a ``RunSpec``) when the worker could not write its own."""
    record = base(run_id=spec.run_id, backend=spec.backend, mode=spec.mode, device=spec.device, seed=spec.seed,
                  recipe=config.recipe.to_dict(), command=config.command, started_at=started_at,
                  machine_info=machine_info, info=info, devices=spec.devices * spec.hosts, hosts=spec.hosts,
                  precision=spec.precision)
    record.update(status=status, error=error, finished_at=now())
    if executor:
        record["executor"] = executor
    record["threads"] = {"requested": config.threads}
    record["contention"] = {"version": contention.VERSION, "cpus": contention.pinned_cpus(config.threads),
                            "threshold": contention.CONTENDED_SHARE, "quiet_wait": quiet_wait}
    return record
