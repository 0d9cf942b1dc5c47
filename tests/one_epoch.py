"""One epoch of the full recipe per built-in implementation, through the real harness.

Run once per test session (the ``one_epoch`` fixture in conftest.py) and read by every test
that needs a real epoch: accuracy parity (tests/test_accuracy_parity.py) and what Keras's
``model.fit`` recorded (tests/test_keras.py). Each implementation runs in its ``tuned`` mode
where it has one; the Keras implementations have none (their modes are Keras's jit_compile
settings) and run their default, ``model.fit`` as Keras chooses.
"""

from pathlib import Path

from mnist_bench.bench import cli
from mnist_bench.common import records, registry

# The float64 NumPy oracle is too slow to train an epoch (its spec says accuracy_parity=False): it is
# proven the same model step by step in tests/test_parity.py instead.
# Plug-ins prove their accuracy with the same rule through the pytest plug-in (tests/test_plugins.py).
ACCURACY_BACKENDS = [name for name in registry.built_in_names() if registry.spec(name).accuracy_parity]
TUNED = [name for name in ACCURACY_BACKENDS if "tuned" in registry.modes(name)]
DEFAULT = [name for name in ACCURACY_BACKENDS if name not in TUNED]


def run(data_dir: Path, out: Path) -> dict[str, dict]:
    """Every accuracy backend's one-epoch record, by backend; asserts each run finished ok."""
    # Accuracy only: no speed is read, so no quiet-machine wait (up to 2 minutes before each run on a
    # busy machine) and no matmul-peak probe, as mnist_bench.parity.accuracy runs it.
    codes = [cli.main(["run", "--backends", ",".join(backends), "--modes", modes, "--device", "cpu", "--epochs", "1",
                       "--data-dir", str(data_dir), "--out", str(out / modes), "--quiet",
                       "--no-require-quiet", "--no-peak-probe"])
             for backends, modes in ((TUNED, "tuned"), (DEFAULT, "default")) if backends]
    runs = {r["backend"]: r for r in (records.read(p) for d in out.iterdir() for p in records.record_paths(d))}
    assert codes == [0] * len(codes), {b: (r["status"], r.get("error")) for b, r in runs.items()}
    assert sorted(runs) == sorted(ACCURACY_BACKENDS)
    return runs
