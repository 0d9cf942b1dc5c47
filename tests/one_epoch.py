"""One epoch of the full recipe per built-in implementation, through the real harness.

Run once per test session (the ``one_epoch`` fixture in conftest.py) and read by every test
that needs a real epoch: accuracy parity (tests/test_accuracy_parity.py) and what Keras's
``model.fit`` recorded (tests/test_keras.py). Each implementation runs in its fastest mode
(``--modes fastest``: the numerical parity tests prove every mode the same model).

Accuracy only, no speed is read: so no quiet-machine wait and no matmul-peak probe (as
mnist_bench.parity.accuracy runs it), and the implementations train side by side, one harness
per CPU at a time, each pinned to its CPU with one thread. Two single-thread runs on a 2-core machine
finish in about 1.1x (torch) to 1.4x (keras-torch) the time of one two-thread run, against 2x
one after the other.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from mnist_bench.common import records, registry

# The float64 NumPy oracle is too slow to train an epoch (its spec says accuracy_parity=False): it is
# proven the same model step by step in tests/test_parity.py instead.
# Plug-ins prove their accuracy with the same rule through the pytest plug-in (tests/test_plugins.py).
ACCURACY_BACKENDS = [name for name in registry.built_in_names() if registry.spec(name).accuracy_parity]
TIMEOUT_S = 2400


def _start(backend: str, cpu: int, data_dir: Path, out: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mnist_bench.bench.cli", "run", "--backends", backend, "--modes", "fastest",
            "--device", "cpu", "--epochs", "1", "--threads", "1", "--data-dir", str(data_dir),
            "--out", str(out / backend), "--quiet", "--no-require-quiet", "--no-peak-probe"]
    # The harness pins its workers to the first CPUs it may use: here, this lane's one. Its output goes
    # to a file: a pipe nobody reads until the end could fill and stall it.
    with open(out / f"{backend}.out", "w") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def run(data_dir: Path, out: Path) -> dict[str, dict]:
    """Every accuracy backend's one-epoch record, by backend; asserts each run finished ok.

    One harness per backend, as many at once as there are CPUs; a CPU takes the next backend when its
    run ends, so a slow implementation never holds up a lane of others. Keras first: its runs are the
    longest, and starting them first packs the lanes best.
    """
    queue = sorted(ACCURACY_BACKENDS, key=lambda name: not name.startswith("keras-"))
    free = sorted(os.sched_getaffinity(0))
    running: dict[int, tuple[str, subprocess.Popen]] = {}
    outputs, codes = {}, {}
    deadline = time.monotonic() + TIMEOUT_S
    while queue or running:
        while queue and free:
            cpu = free.pop(0)
            backend = queue.pop(0)
            running[cpu] = (backend, _start(backend, cpu, data_dir, out))
        assert time.monotonic() < deadline, f"one-epoch runs still going after {TIMEOUT_S} s: {running}"
        time.sleep(1)
        for cpu, (backend, proc) in list(running.items()):
            if proc.poll() is not None:
                outputs[backend], codes[backend] = (out / f"{backend}.out").read_text(), proc.returncode
                del running[cpu]
                free.append(cpu)
    runs = {r["backend"]: r for r in (records.read(p) for d in out.iterdir() if d.is_dir()
                                      for p in records.record_paths(d))}
    assert all(code == 0 for code in codes.values()), (
        {b: (r["status"], r.get("error")) for b, r in runs.items()},
        {b: outputs[b][-3000:] for b, code in codes.items() if code})
    assert sorted(runs) == sorted(ACCURACY_BACKENDS)
    return runs
