"""Distributed data parallel through ``torchrun`` (one process per GPU, gloo on CPU).

``torchrun --nproc-per-node 4 -m deal_ros.cli train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK;
``DistEnv.from_env()`` joins the process group (NCCL on CUDA, gloo otherwise) and each rank
trains on its shard of every epoch (``deal_ros.engine.sampler``). Rank 0 alone writes the run
folder; the others wait at barriers. Without those variables everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: str = "auto") -> DistEnv:
        """Join the torchrun process group when WORLD_SIZE > 1 (idempotent)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            cuda = torch.cuda.is_available() and device != "cpu"
            if cuda:
                torch.cuda.set_device(local)
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        return cls(rank=rank, world=world, local_rank=local, initialised=True)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average a dict of floats over ranks (the same keys on every rank)."""
        if not self.distributed or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.cpu().tolist())}

    def close(self) -> None:
        if self.initialised and dist.is_initialized():
            dist.destroy_process_group()
            self.initialised = False


def wrap_model(
    model: torch.nn.Module,
    env: DistEnv,
    device: torch.device,
    sync_bn: bool,
    find_unused_parameters: bool = False,
):
    """DDP wrapper (and SyncBatchNorm when asked) under torchrun; the model itself otherwise.
    ``find_unused_parameters``: for models whose steps may leave parameters without a
    gradient (the box method's mask head when a batch has no positive location)."""
    if not env.distributed:
        return model
    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model
