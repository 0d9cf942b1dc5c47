"""PyTorch data-parallel: ``DistributedDataParallel`` over ``torch.distributed``, one process per device.

Each process is one rank and reads the torchrun environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): torchrun sets it
across hosts, and the worker sets it for the processes it starts on one host
(:mod:`mnist_bench.common.parallel`). Process group: gloo on CPU, NCCL on GPUs (one GPU per
local rank). The model, its layouts and the optimiser are those of
:mod:`mnist_bench.backends.torch_backend.backend`.

Every rank runs the shared pipeline and gets the global batch; it trains on its
own contiguous shard, and DDP averages the gradients across ranks. The shards are
equal, so the average of the shard means is the global-batch mean: the gradient a
single device computes on the whole batch.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import final

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from mnist_bench.backends.torch_backend.backend import Net, images, labels, numerics, state_dict, to_canonical
from mnist_bench.common import parallel, weights
from mnist_bench.common.interface import Backend, DeviceUnavailable
from mnist_bench.backends.torch_backend.spec import SPEC

# A rank that dies leaves the others blocked in a collective; the worker's own
# watchdog ends the run first, this only bounds it when there is no watchdog.
COLLECTIVE_TIMEOUT = dt.timedelta(minutes=10)


def _rank_device(kind: str, local_rank: int, local_ranks: int) -> torch.device:
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "gpu":
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if found < local_ranks:
            raise DeviceUnavailable(
                f"--devices {local_ranks} asks for {local_ranks} GPUs on this host but PyTorch {torch.__version__} "
                f"sees {found} (CUDA build: {torch.version.cuda or 'none'}); use --devices {found or 1} or fewer")
        return torch.device("cuda", local_rank)
    raise DeviceUnavailable(f"PyTorch has no {kind!r} device here (torch_xla is not supported by mnist-bench)")


@final
class TorchDDPBackend(Backend):
    name = SPEC.name  # the spec is the one place these are written
    modes = SPEC.data_parallel_modes
    data_parallel = True

    def _build(self) -> None:
        if not parallel.launched_by_launcher():
            raise RuntimeError("TorchDDPBackend runs in a process started by torchrun or by the mnist-bench worker "
                               "(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT are not all set)")
        self.rank = int(os.environ["RANK"])
        self.world = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        if self.world != self.topology.world:
            raise RuntimeError(f"WORLD_SIZE is {self.world} but the run asks for {self.topology.world} devices "
                               f"({self.topology.devices} per host x {self.topology.hosts} hosts)")
        if self.threads:
            torch.set_num_threads(self.threads)
        self._device = _rank_device(self.device, self.local_rank, self.topology.devices)
        if self._device.type == "cuda":
            torch.cuda.set_device(self._device)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self._device.type == "cuda" else "gloo", init_method="env://",
                                    timeout=COLLECTIVE_TIMEOUT)
        torch.manual_seed(self.seed)
        r = self.recipe
        self.model = Net(r.conv1_filters, r.conv2_filters, r.hidden, r.dropout1, r.dropout2).to(self._device)
        # DDP broadcasts rank 0's parameters at construction; the canonical weights
        # loaded next are the same on every rank anyway.
        self.ddp = DistributedDataParallel(self.model, device_ids=[self._device] if self._device.type == "cuda" else None)
        self._new_optimizer()

    def _new_optimizer(self) -> None:
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.recipe.learning_rate,
                                         momentum=self.recipe.momentum)

    def load_weights(self, canonical: weights.Weights) -> None:
        with torch.no_grad():
            self.model.load_state_dict(state_dict(weights.check(canonical, self.recipe), self.recipe))
        self._new_optimizer()

    def export_weights(self) -> weights.Weights:
        return to_canonical(dict(self.model.named_parameters()), self.recipe)

    def _shard(self, array: np.ndarray, axis: int) -> np.ndarray:
        return parallel.shard(array, self.rank, self.world, axis=axis)

    def _global_mean(self, local: torch.Tensor) -> torch.Tensor:
        """Average over ranks of each rank's shard-mean loss: the global-batch mean."""
        total = local.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world

    def train_chunk(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        self.ddp.train()
        xs, ys = images(self._shard(x, 1), self._device), labels(self._shard(y, 1), self._device)
        losses = []
        for xb, yb in zip(xs, ys):
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.ddp(xb), yb)
            loss.backward()  # DDP all-reduces and averages the gradients here
            self.optimizer.step()
            losses.append(loss.detach())
        return self._global_mean(torch.stack(losses)).cpu().numpy()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, weights.Weights]:
        self.ddp.eval()
        self.ddp.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.ddp(images(self._shard(x, 0), self._device)),
                               labels(self._shard(y, 0), self._device))
        loss.backward()
        grads = {name: p.grad for name, p in self.model.named_parameters()}
        return float(self._global_mean(loss).item()), to_canonical(grads, self.recipe)

    @torch.no_grad()
    def _logits(self, x: np.ndarray) -> np.ndarray:
        # Evaluation needs no collective: every rank holds the same weights.
        self.model.eval()
        return self.model(images(x, self._device)).cpu().numpy()

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__, "cuda": torch.version.cuda or "",
                "cudnn": str(torch.backends.cudnn.version() or "")}

    def device_info(self) -> dict:
        info = {"kind": "gpu" if self._device.type == "cuda" else "cpu", "count": self.world,
                "engine": f"torch.distributed DistributedDataParallel ({dist.get_backend()})",
                "processes": self.world}
        if self._device.type == "cuda":
            info["name"] = torch.cuda.get_device_name(self._device)
        else:
            info.update(name="cpu", threads_per_process=torch.get_num_threads())
        return info

    def numerics(self) -> dict:
        return numerics(self._device)

    def peak_device_memory(self) -> int | None:
        return int(torch.cuda.max_memory_allocated(self._device)) if self._device.type == "cuda" else None
