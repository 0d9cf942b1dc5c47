"""Implementations from other distributions: found, proven by the parity plug-in, run and reported.

The two distributions under examples/ are installed by the test command (scripts/test.sh), as a
user would install theirs; nothing in this repository names them. One is right (torch-func) and
must pass the plug-in's checks from its own tests; the other reads dense-layer features in the
wrong order and must be caught, with a message naming the check and the figures.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_bench.common import records, registry

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
PLUGINS = ("torch-func", "torch-func-wrong-order")


def _env(data_dir) -> dict:
    return {**os.environ, "MNIST_BENCH_DATA": str(data_dir)}


def test_examples_are_installed_and_listed():
    for name in PLUGINS:
        assert name in registry.names(), (f"{name} is not installed; the test command installs it: "
                                          f"pip install --no-deps -e examples/{name}")
        assert registry.distribution(name) != registry.THIS_DISTRIBUTION
    assert not set(PLUGINS) & set(registry.default_names())  # plug-ins run when named, never by default
    proc = subprocess.run([sys.executable, "-m", "mnist_bench.bench.cli", "backends"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in PLUGINS:
        assert name in proc.stdout
    # The parity plug-in is registered with pytest (pytest11) and its options do not clash with the
    # benchmark suite's, which pytest loads in the same process.
    help_text = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True,
                               timeout=120, cwd=EXAMPLES)
    assert "--mnist-parity-data" in help_text.stdout, help_text.stdout[-2000:]
    collected = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider",
                                "--mnist-backend", "torch", str(REPO_ROOT / "bench" / "benchmarks")],
                               capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]


def _pytest(example: str, data_dir, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", str(EXAMPLES / example / "tests"), "-q", "-p",
                           "no:cacheprovider", "--basetemp", str(tmp_path / "basetemp")],
                          capture_output=True, text=True, env=_env(data_dir), timeout=1500)


@pytest.mark.timeout(1600)
def test_the_right_example_passes_the_parity_plugin_from_its_own_tests(shared_data_dir, tmp_path):
    proc = _pytest("torch-func", shared_data_dir, tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "2 passed" in proc.stdout


@pytest.mark.timeout(1600)
def test_the_wrong_example_is_caught_naming_the_check_and_the_figures(shared_data_dir, tmp_path):
    proc = _pytest("torch-func-wrong-order", shared_data_dir, tmp_path)
    assert proc.returncode == 1, proc.stdout[-6000:] + proc.stderr[-3000:]
    out = proc.stdout
    # Against torch and against float64, the forward pass already differs by far more than rounding.
    assert re.search(r"forward_logits (torch-func-wrong-order-functional vs torch-eager|torch-eager vs "
                     r"torch-func-wrong-order-functional): difference \d\.\d+e[-+]\d+ exceeds", out), out[-6000:]
    assert "forward_logits_vs_float64 torch-func-wrong-order-functional: error against float64" in out, out[-6000:]
    assert "exceeds" in out and "float32 reference's error" in out


@pytest.mark.timeout(900)
def test_a_plugin_runs_in_a_sweep_and_appears_in_the_report(shared_data_dir, tmp_path):
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "mnist_bench.bench.cli", "run", "--backends", "torch-func",
                          "--preset", "quick", "--set", "train_limit=640", "--set", "test_limit=500",
                          "--device", "cpu", "--no-peak-probe", "--no-require-quiet", "--out", str(out)],
                         capture_output=True, text=True, env=_env(shared_data_dir), timeout=800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (record,) = [records.validate(records.read(p)) for p in records.record_paths(out)]
    assert record["backend"] == "torch-func" and record["status"] == "ok"
    assert record["numerics"]["dtype"] == "float32"
    report = subprocess.run([sys.executable, "-m", "mnist_bench.bench.cli", "report", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "torch-func" in (out / "report.md").read_text()
    assert json.loads((out / "manifest.json").read_text())


def _fake_distribution(root: Path, dist: str, entry: str, module: str | None = None, source: str = "") -> None:
    """A distribution as pip leaves it on sys.path: a .dist-info folder with entry points (and a module)."""
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[mnist_bench.backends]\n{entry}\n")
    if module:
        (root / f"{module}.py").write_text(source)


def test_a_broken_plugin_is_one_line_and_the_others_keep_working(tmp_path):
    _fake_distribution(tmp_path, "mnist-bench-missing", "ghost = no_such_module_mnist:SPEC")
    _fake_distribution(tmp_path, "mnist-bench-invalid", "bad = bad_spec_mnist:SPEC", "bad_spec_mnist",
                       "from mnist_bench import ImplementationSpec\n"
                       "SPEC = ImplementationSpec(name='bad', package='bad_spec_mnist', backend='backend:X',\n"
                       "                          modes=('a',), default_mode='b', requires=(), install='-')\n")
    _fake_distribution(tmp_path, "mnist-bench-misnamed", "alias = misnamed_mnist:SPEC", "misnamed_mnist",
                       "from mnist_bench.backends.torch_backend.spec import SPEC\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "mnist_bench.bench.cli", "backends"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    problems = [line for line in proc.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 3, proc.stdout
    joined = "\n".join(problems)
    assert "'ghost' from mnist-bench-missing" in joined and "ModuleNotFoundError" in joined
    assert "'bad' from mnist-bench-invalid" in joined and "default_mode 'b' is not one of modes" in joined
    assert "'alias' from mnist-bench-misnamed" in joined and "its spec says 'torch'" in joined
    for name in ("torch", "tensorflow", "flax-linen", "numpy"):
        assert any(line.startswith(name + " ") for line in proc.stdout.splitlines()), proc.stdout
