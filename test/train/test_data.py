"""The data side of the trainer: deterministic per-(epoch, index) augmentation, the epoch
batch sampler (sharding for DDP, resuming mid-epoch), and items built from real scenes."""

from __future__ import annotations

import pytest
import torch

from deal_ros.data.registry import build_dataset
from deal_ros.errors import DealError
from deal_ros.train.config import AugmentConfig
from deal_ros.train.data import EpochBatches, TrainItems


@pytest.fixture(scope="module")
def scenes():
    return build_dataset("scene:n=6,seed=3,size=40x56")


def test_items_are_a_function_of_epoch_and_index(scenes):
    aug = AugmentConfig(hflip=True, scale=[0.7, 1.3], color_jitter=0.3)
    a = TrainItems(scenes, (32, 48), aug, seed=5, cache=True)
    b = TrainItems(scenes, (32, 48), aug, seed=5)
    x, y = a[(2, 1)], b[(2, 1)]
    for key in ("image", "depth", "valid", "labels", "target"):
        assert torch.equal(x[key], y[key]), key
    assert x["image"].shape == (3, 32, 48) and x["depth"].shape == (1, 32, 48)
    assert x["valid"].dtype == torch.bool and x["target"].dtype == torch.int64
    assert bool((x["depth"][~x["valid"]] == 0).all())  # holes stay holes, never blended
    assert bool((x["target"] == 255).all())  # the cam stage never sees the gt mask
    assert not torch.equal(a[(2, 1)]["image"], a[(2, 2)]["image"])  # new epoch, new draw
    assert torch.equal(x["labels"], torch.from_numpy(scenes[2].labels))


def test_items_without_augmentation_are_the_centre_crop(scenes):
    items = TrainItems(scenes, (40, 56), None)
    x = items[0]
    assert torch.equal((x["image"] * 255).round().byte().permute(1, 2, 0),
                       torch.from_numpy(scenes[0].rgb))  # fmt: skip


def test_epoch_batches_shard_skip_and_reject_tiny_data():
    n, bs = 8, 2
    shards = [EpochBatches(n, bs, seed=1, rank=r, world=2) for r in range(2)]
    for s in shards:
        s.start(epoch=3)
    seen = [i for s in shards for batch in s for i, e in batch if e == 3]
    assert sorted(seen) == list(range(n))  # the two ranks split one permutation
    one = EpochBatches(n, bs, seed=1)
    one.start(epoch=0)
    full = list(one)
    one.start(epoch=0, skip=3)
    assert list(one) == full[3:] and len(one) == len(full) - 3
    one.start(epoch=1)
    assert list(one) != full  # reshuffled
    with pytest.raises(DealError, match=r"train\.batch_size=8 is larger than the 5 samples"):
        EpochBatches(10, 8, seed=0, rank=0, world=2)
