"""The batch sampler of every stage: ``EpochBatches``.

A seeded permutation per epoch (the same on every rank), padded by wrapping to a multiple of
the world size, the rank's shard of it, ``drop_last`` batching, and ``start(epoch, skip)`` to
begin an epoch after ``skip`` batches (resume). It yields ``(index, epoch)`` keys, so a dataset
can draw its augmentation from (seed, epoch, index) alone: any worker count, resume point and
rank sees the same item.

The permutation is ``torch.randperm`` seeded with ``seed * 1_000_003 + epoch`` unless the stage
brings its own (``permutation(seed, epoch, n)``; the box method keeps the numpy order it has
always trained with).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from deal_ros.errors import DealError

Permutation = Callable[[int, int, int], Sequence[int]]  # (seed, epoch, n) -> order of 0..n-1


def torch_permutation(seed: int, epoch: int, n: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


class EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(index, epoch)`` keys: a seeded permutation per epoch, the rank's shard of
    it, ``drop_last`` batching; ``start(epoch, skip)`` begins an epoch after ``skip`` batches."""

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
        shuffle: bool = True, permutation: Permutation | None = None,
    ) -> None:  # fmt: skip
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.permutation = permutation or torch_permutation
        per_rank = -(-n // world)  # ceil: the permutation is padded by wrapping
        if per_rank < batch_size:
            raise DealError(
                f"train.batch_size={batch_size} is larger than the {per_rank} samples each of the "
                f"{world} process(es) gets from {n} samples: lower train.batch_size"
            )
        self.per_rank = per_rank
        self.epoch, self.skip = 0, 0

    def __len__(self) -> int:
        return self.per_rank // self.batch_size - self.skip

    @property
    def batches_per_epoch(self) -> int:
        return self.per_rank // self.batch_size

    def start(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip)

    def order(self, epoch: int) -> list[int]:
        if self.shuffle:
            perm = list(self.permutation(self.seed, epoch, self.n))
        else:
            perm = list(range(self.n))
        total = self.per_rank * self.world
        perm = (perm * (total // self.n + 1))[:total]
        return perm[self.rank :: self.world]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        mine = self.order(self.epoch)
        for b in range(self.skip, self.batches_per_epoch):
            chunk = mine[b * self.batch_size : (b + 1) * self.batch_size]
            yield [(i, self.epoch) for i in chunk]
