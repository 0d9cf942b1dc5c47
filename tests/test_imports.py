"""Import hygiene: the shared layer, the harness and the CLI never import a framework.

Each check runs in a fresh interpreter, so what this pytest process has already
imported cannot hide (or cause) a framework import.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mnist_bench.common import registry

REPO_ROOT = Path(__file__).resolve().parent.parent

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "jaxlib", "flax", "optax")
TIMEOUT = 180


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _run_python(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; it must print one JSON object as its last line.

    ``code`` may call ``loaded_frameworks()``: the framework modules in ``sys.modules``.
    """
    proc = subprocess.run(
        [sys.executable, "-c", LOADED_FRAMEWORKS + textwrap.dedent(code), *args],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Prepended to every probe script.
LOADED_FRAMEWORKS = f"""
import sys


def loaded_frameworks():
    return sorted(m for m in sys.modules if m.split(".")[0] in {FRAMEWORKS!r})
"""


def test_shared_layer_and_cli_import_no_framework():
    result = _run_python(
        """
        import importlib, json, pkgutil, sys
        import mnist_bench.common as common, mnist_bench.bench as bench, mnist_bench.backends as backends
        modules = []
        for pkg in (common, bench):
            for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                importlib.import_module(info.name)
                modules.append(info.name)
        import mnist_bench.bench.cli
        print(json.dumps({
            "modules": modules,
            "frameworks": loaded_frameworks(),
            "backend_modules": sorted(m for m in sys.modules if m.startswith("mnist_bench.backends.")),
        }))
        """
    )
    # Discovery really walked the packages.
    for name in ("mnist_bench.common.recipe", "mnist_bench.common.weights", "mnist_bench.common.pipeline", "mnist_bench.common.registry",
                 "mnist_bench.common.interface", "mnist_bench.bench.cli", "mnist_bench.common.peak", "mnist_bench.bench.perf.device_peak",
                 "mnist_bench.bench.benchmarks.suite", "mnist_bench.bench.benchmarks.driver", "mnist_bench.bench.benchmarks.keys", "mnist_bench.bench.benchmarks.conftest",
                 "mnist_bench.bench.benchmarks.test_steps"):
        assert name in result["modules"]
    assert result["frameworks"] == []
    assert result["backend_modules"] == []


def test_cli_backends_lists_the_built_in_backends():
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_bench.bench.cli", "backends"],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    said = {}
    for name in ("torch", "tensorflow", "flax-linen", "flax-nnx", "keras-jax", "keras-torch", "keras-tensorflow",
                 "numpy"):
        at = next((i for i, l in enumerate(lines) if l.split() and l.split()[0] == name), None)
        assert at is not None, f"{name} missing from:\n{proc.stdout}"
        said[name] = lines[at]  # what it is; its modes on the next line
        assert ", ".join(registry.modes(name)) in lines[at + 1]
    assert "GradientTape" in said["tensorflow"] and "model.fit" in said["keras-tensorflow"]
    assert "Linen" in said["flax-linen"] and "NNX" in said["flax-nnx"]


# --- registry -----------------------------------------------------------------------------


def test_is_available_does_not_import_frameworks():
    result = _run_python(
        """
        import importlib.util, json, sys
        from mnist_bench.common import registry
        available = {name: registry.is_available(name) for name in registry.names()}
        missing = {name: registry.missing_packages(name) for name in registry.names()}
        expected = {name: all(importlib.util.find_spec(p) is not None for p in s.requires)
                    for name, s in registry.specs().items()}
        print(json.dumps({"available": available, "missing": missing, "expected": expected,
                          "frameworks": loaded_frameworks()}))
        """
    )
    assert result["frameworks"] == []
    assert result["available"] == result["expected"]
    for name, ok in result["available"].items():
        assert ok == (result["missing"][name] == [])


def test_is_available_uses_find_spec(monkeypatch):
    import importlib.util

    asked = []
    real = importlib.util.find_spec

    def spy(name, *args, **kwargs):
        asked.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", spy)
    registry.is_available("flax-nnx")
    assert asked == list(registry.spec("flax-nnx").requires)


def test_missing_package_reported_with_install_hint(replace_spec):
    replace_spec("torch", requires=("no_such_package_mnist_bench",))
    assert registry.is_available("torch") is False
    assert registry.missing_packages("torch") == ["no_such_package_mnist_bench"]
    msg = registry.not_installed_message("torch")
    assert "no_such_package_mnist_bench" in msg and ".[torch]" in msg
    with pytest.raises(registry.BackendNotInstalled, match="no_such_package_mnist_bench"):
        registry.load_backend("torch")


def test_unknown_backend_names_the_choices():
    with pytest.raises(registry.UnknownBackend) as err:
        registry.spec("nope")
    msg = str(err.value)
    assert "'nope'" in msg
    for name in ("torch", "tensorflow", "flax-linen", "flax-nnx"):
        assert name in msg
    with pytest.raises(registry.UnknownBackend):
        registry.is_available("nope")


def test_built_in_specs_are_registered_and_valid():
    assert {"torch", "tensorflow", "flax-linen", "flax-nnx"} <= set(registry.names())
    assert registry.problems() == ()
    for name, spec in registry.specs().items():
        assert spec.name == name and spec.problems() == []
        assert spec.default_mode in spec.modes


# --- backend classes, one interpreter per framework, run concurrently ---------------------

BACKEND_PROBE = """
import json, os, sys
from mnist_bench.common import registry
from mnist_bench.common.interface import Backend
name = sys.argv[1]
os.environ.update(registry.spec(name).env)  # as every worker does, before the framework is imported
cls = registry.load_backend(name)
print(json.dumps({
    "subclass": isinstance(cls, type) and issubclass(cls, Backend),
    "final": getattr(cls, "__final__", False),
    "name": cls.name,
    "modes": list(cls.modes),
    "module": cls.__module__,
    "cls": cls.__name__,
    "abstract": sorted(getattr(cls, "__abstractmethods__", ())),
    "modules": sorted({m.split(".")[0] for m in sys.modules}),
}))
"""


@pytest.fixture(scope="module")
def backend_probes():
    """Start one probe interpreter per installed backend at once; results are read lazily."""
    procs = {}
    for name in registry.names():
        if registry.is_available(name):
            procs[name] = subprocess.Popen(
                [sys.executable, "-c", BACKEND_PROBE, name],
                cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize("name", list(registry.names()))
def test_backend_class(name, backend_probes):
    assert name in backend_probes, registry.not_installed_message(name)  # CI installs every backend
    proc = backend_probes[name]
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    e = registry.spec(name)
    assert f"{info['module']}:{info['cls']}" == f"{e.package}.{e.backend}"
    assert info["subclass"] is True
    assert info["final"] is True
    assert info["abstract"] == []
    assert info["name"] == name
    assert tuple(info["modes"]) == registry.modes(name)
    assert registry.default_mode(name) in info["modes"]
    # The backend really imported its own framework.
    assert set(e.requires) <= set(info["modules"])
