"""Shared fixtures: where the test datasets live, and isolation from real ones."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

# Two test workers, each on its own CPUs (scripts/test.sh): the hooks that share the machine between them.
from machine_share import (pytest_collection_finish, pytest_collection_modifyitems,  # noqa: F401
                           pytest_configure, pytest_runtest_protocol, pytest_unconfigure)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Root holding ``mnist/`` and ``fashion-mnist/``: $MNIST_BENCH_DATA, else ../shared/data.

    Read once per session, before any test unsets the variable.
    """
    env_root = os.environ.get("MNIST_BENCH_DATA")
    root = Path(env_root) if env_root else REPO_ROOT.parent / "shared" / "data"
    if not root.is_dir():
        # Never a silent skip: the data tests and parity tests are the point of the suite.
        pytest.fail(f"shared datasets not found at {root}; set MNIST_BENCH_DATA to the folder "
                    "holding mnist/ and fashion-mnist/ (CI uses ../shared/data)")
    return root


@pytest.fixture
def data_locations(tmp_path, monkeypatch) -> SimpleNamespace:
    """Point every place the dataset loader searches into ``tmp_path``.

    Unsets MNIST_BENCH_DATA and redirects HOME, XDG_CACHE_HOME and the Debian
    Fashion-MNIST folder, so a real cache on this machine can't leak into a test.
    Returns the paths (``env``, ``home``, ``xdg``, ``debian``); none exist yet.
    """
    from mnist_bench.common import datasets

    locations = SimpleNamespace(
        env=tmp_path / "env",
        home=tmp_path / "home",
        xdg=tmp_path / "xdg",
        debian=tmp_path / "debian" / "fashion-mnist",
    )
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(locations.home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(locations.xdg))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", locations.debian)
    return locations


@pytest.fixture
def replace_spec(monkeypatch):
    """``replace_spec("torch", requires=(...))``: the registry sees a changed spec for this test only."""
    import dataclasses

    from mnist_bench.common import registry

    def replace(name, **changes):
        found, problems = registry._discover()
        spec, dist = found[name]
        changed = {**found, name: (dataclasses.replace(spec, **changes), dist)}
        monkeypatch.setattr(registry, "_discover", lambda: (changed, problems))

    return replace


@pytest.fixture(scope="session")
def one_epoch(shared_data_dir, tmp_path_factory):
    """One epoch of every built-in implementation through the harness (tests/one_epoch.py), run once."""
    import one_epoch as epoch

    return epoch.run(shared_data_dir, tmp_path_factory.mktemp("one-epoch"))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real SLURM cluster (munged, slurmctld, two slurmd on this machine) for the session; SLURM_CONF points at it.

    Installs Debian's slurm-wlm and munge when missing. Fails, never skips, when it cannot start: the
    SLURM executor is tested against real daemons or not at all. Its daemons are stopped by their PIDs.
    """
    import slurm_cluster as slurm

    try:
        cluster = slurm.start(tmp_path_factory.mktemp("slurm"))
    except (slurm.ClusterUnavailable, OSError) as exc:
        pytest.fail(f"{exc}\nThe SLURM tests need root and apt-get (or slurm-wlm and munge installed); "
                    "see scripts/slurm/start.sh", pytrace=False)
    previous = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        slurm.stop(cluster)
