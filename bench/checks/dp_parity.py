"""Data-parallel parity: distributing must not change the mathematics.

From the canonical initial weights, with dropout off, a run on N devices (or N
hosts) must follow the single-device run's loss at **every** step, and end at the
same weights. The probe runs in its own process(es), like every run:

    python -m mnist_bench.bench.checks.dp_parity BACKEND INPUTS.npz OUT.npz [--devices N] [--hosts H --host-rank R
                              --coordinator HOST:PORT] [--threads T] [--device cpu]

``INPUTS.npz`` comes from :func:`make_inputs` (weights and batches on real MNIST).
A single-device probe uses the backend's ordinary module, a data-parallel one its
data-parallel module; PyTorch starts one process per device. Each host's local
rank 0 writes OUT.npz: the loss and gradients on the first batch (no update), the
loss at every step, and the final weights. The tolerances, with the measurements
they were set from, are in :data:`TOLERANCES`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mnist_bench.bench.checks.parity import Tolerance
from mnist_bench.bench.checks.probe import first_batches, initial_weights, parity_recipe

STEPS = 25

# Measured on this project's 2-core CPU machine (float32), 2 devices vs 1 device, 25
# steps, largest of the three backends (torch / tensorflow / flax-linen each in brackets).
# The only difference is the order in which the batch is summed (two half-batch
# sums and a cross-device reduce instead of one sum), so these are float32 rounding
# of that, bounded ~10-40x above what was seen. A wrong gradient average (a sum, or
# a shard mean not divided by the device count) moves step 2's loss by ~1e-2.
TOLERANCES: dict[str, Tolerance] = {
    "loss": Tolerance(1e-5, 2.4e-7, "|first-batch loss difference| (2.4e-7 / 0 / 2.4e-7)"),
    "gradients": Tolerance(1e-4, 3.9e-6, "max |grad difference| / max |grad|, per tensor (3.9e-6 / 2.5e-6 / 9.3e-7)"),
    "trajectory_loss": Tolerance(1e-5, 4.8e-7, "max |loss difference| over all 25 steps (4.8e-7 / 2.4e-7 / 4.8e-7)"),
    "trajectory_weights": Tolerance(2e-5, 1.8e-6, "max |weight difference| after 25 steps (7.8e-8 / 1.8e-6 / 3.0e-8)"),
}


def make_inputs(data_dir: str | None, path: Path, seed: int = 0, steps: int = STEPS) -> Path:
    """Canonical initial weights and the first ``steps`` batches of epoch 0, in the pipeline's order."""
    recipe = parity_recipe()
    _, xs, ys = first_batches(data_dir, recipe, steps, seed, test_set=False)
    np.savez(path, x=xs, y=ys, **initial_weights(recipe, seed))
    return path


def probe(backend_name: str, topology, inputs: Path, out: Path, device: str, threads: int, steps: int = 0) -> None:
    """Inside the backend's process: first-batch loss and gradients, then the trajectory (the first ``steps``)."""
    from mnist_bench.bench.run import launch
    from mnist_bench.common.registry import default_mode, load_backend

    data = np.load(inputs, allow_pickle=False)
    init = {k[2:]: data[k] for k in data.files if k.startswith("w/")}
    cls = load_backend(backend_name, data_parallel=topology.parallel)
    backend = cls(parity_recipe(), device=device, mode=default_mode(backend_name), seed=0, threads=threads,
                  topology=topology)
    backend.load_weights(init)
    loss, grads = backend.loss_and_grads(data["x"][0], data["y"][0])
    take = slice(0, steps or len(data["x"]))
    losses = backend.train_chunk(data["x"][take], data["y"][take])
    final = backend.export_weights()
    if launch.is_reporter():
        np.savez(out, loss=np.float64(loss), losses=losses, world=np.int64(topology.world),
                 **{f"g/{k}": v for k, v in grads.items()}, **{f"final/{k}": v for k, v in final.items()})


def differences(reference: dict, other: dict) -> dict[str, float]:
    """The measured difference for every check in :data:`TOLERANCES`."""
    grads = [k for k in reference if k.startswith("g/")]
    finals = [k for k in reference if k.startswith("final/")]
    return {
        "loss": abs(float(reference["loss"]) - float(other["loss"])),
        "gradients": max(float(np.max(np.abs(reference[k] - other[k])) / max(float(np.max(np.abs(reference[k]))), 1e-30))
                         for k in grads),
        "trajectory_loss": float(np.max(np.abs(reference["losses"] - other["losses"]))),
        "trajectory_weights": max(float(np.max(np.abs(reference[k] - other[k]))) for k in finals),
    }


def main(argv: list[str] | None = None) -> int:
    from mnist_bench.bench import options

    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.checks.dp_parity")
    parser.add_argument("backend")
    parser.add_argument("inputs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--host-rank", type=int, default=0)
    parser.add_argument("--coordinator")
    options.add_threads(parser, default=2)
    options.add_device(parser, "cpu", auto=False)
    parser.add_argument("--steps", type=int, default=0, help="train on the first STEPS batches only (default all)")
    args = parser.parse_args(argv)
    from mnist_bench.bench.run import launch
    from mnist_bench.bench.run.process_setup import configure_process
    from mnist_bench.common import parallel

    topology = parallel.Topology(args.devices, args.hosts, args.host_rank, args.coordinator)
    parallel.check(topology, 64, cpus=args.threads if args.device == "cpu" else None)
    children = launch.start_local_ranks(args.backend, topology, ["-m", "mnist_bench.bench.checks.dp_parity", *sys.argv[1:]])
    threads = configure_process(args.threads, args.device, args.backend, topology)["requested"]
    probe(args.backend, topology, args.inputs, args.out, args.device, threads, args.steps)
    codes = launch.wait_ranks(children)
    if any(codes):
        print(f"dp_parity: a local rank failed: exit codes {codes}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    import os

    os._exit(code)  # skip the frameworks' slow teardown (and gloo's at-exit waits)
