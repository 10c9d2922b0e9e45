"""Data for box-supervised training: box checks, augmentation that carries boxes, datasets,
and the instance ground truth that evaluation needs.

(The instance ground truth evaluation scores against is ``deal_ros.eval.instances``.)

Bad boxes never stop training; each is skipped and counted (``BOX_PROBLEMS``): ``invalid``
(non-finite coordinates), ``empty`` (x1 <= x0 or y1 <= y0, or under one pixel once clipped),
``outside`` (no overlap with the image), ``unknown_class`` (class id outside 1..K). Boxes
reaching past the image are clipped. The counts ride in ``sample.meta["box_skipped"]`` and the
trainer reports their totals. (A COCO file naming a category it does not declare already
fails in the adapter, one line naming the annotation.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from deal_ros.data.sample import Box, Sample, SampleDataset
from deal_ros.data.torch_dataset import TorchSampleDataset, fit_sample
from deal_ros.errors import DealError
from deal_ros.eval.instances import instance_ground_truth as instance_ground_truth  # old home

BOX_PROBLEMS = ("invalid", "empty", "outside", "unknown_class")
ZERO_MEAN, UNIT_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def clean_boxes(
    boxes: Sequence[Box], height: int, width: int, num_classes: int
) -> tuple[list[Box], dict[str, int]]:
    """Boxes clipped to the image, bad ones dropped; returns (kept, counts of dropped)."""
    counts = dict.fromkeys(BOX_PROBLEMS, 0)
    kept = []
    for b in boxes:
        coords = (b.x0, b.y0, b.x1, b.y1)
        if not all(math.isfinite(float(v)) for v in coords):
            counts["invalid"] += 1
        elif not 1 <= int(b.class_id) <= num_classes:
            counts["unknown_class"] += 1
        elif b.x1 <= b.x0 or b.y1 <= b.y0:
            counts["empty"] += 1
        elif b.x1 <= 0 or b.y1 <= 0 or b.x0 >= width or b.y0 >= height:
            counts["outside"] += 1
        else:
            x0, y0 = max(float(b.x0), 0.0), max(float(b.y0), 0.0)
            x1, y1 = min(float(b.x1), float(width)), min(float(b.y1), float(height))
            if x1 - x0 < 1 or y1 - y0 < 1:
                counts["empty"] += 1
            else:
                kept.append(Box(int(b.class_id), x0, y0, x1, y1))
    return kept, counts


def _replace(s: Sample, **kw: Any) -> Sample:
    fields = {
        "rgb": s.rgb,
        "labels": s.labels,
        "depth": s.depth,
        "valid": s.valid,
        "mask": s.mask,
        "boxes": s.boxes,
        "meta": s.meta,
    }
    fields.update(kw)
    return Sample(**fields)


def random_window(s: Sample, hw: tuple[int, int], rng: np.random.Generator) -> Sample:
    """A random ``hw`` window (crop when larger, pad when smaller); boxes clipped, dropped
    when they leave the window. Padding: mean-grey image, invalid depth, ignore mask."""
    h, w = s.rgb.shape[:2]
    H, W = hw
    y0 = int(rng.integers(0, h - H + 1)) if h >= H else -int(rng.integers(0, H - h + 1))
    x0 = int(rng.integers(0, w - W + 1)) if w >= W else -int(rng.integers(0, W - w + 1))
    sy, sx = slice(max(y0, 0), min(y0 + H, h)), slice(max(x0, 0), min(x0 + W, w))
    dy, dx = max(-y0, 0), max(-x0, 0)
    dst = (slice(dy, dy + sy.stop - sy.start), slice(dx, dx + sx.stop - sx.start))
    rgb = np.full((H, W, 3), 124, np.uint8)
    rgb[dst] = s.rgb[sy, sx]
    depth = valid = mask = None
    if s.depth is not None:
        depth, valid = np.zeros(hw, np.float32), np.zeros(hw, bool)
        depth[dst], valid[dst] = s.depth[sy, sx], s.valid[sy, sx]
    if s.mask is not None:
        mask = np.full(hw, 255, np.uint8)
        mask[dst] = s.mask[sy, sx]
    boxes = []
    for b in s.boxes:
        bx0, by0 = min(max(b.x0 - x0, 0), W), min(max(b.y0 - y0, 0), H)
        bx1, by1 = min(max(b.x1 - x0, 0), W), min(max(b.y1 - y0, 0), H)
        if bx1 - bx0 >= 1 and by1 - by0 >= 1:
            boxes.append(Box(b.class_id, float(bx0), float(by0), float(bx1), float(by1)))
    return _replace(s, rgb=rgb, depth=depth, valid=valid, mask=mask, boxes=boxes)


def hflip(s: Sample) -> Sample:
    w = s.rgb.shape[1]
    flip = lambda a: None if a is None else np.ascontiguousarray(a[:, ::-1])  # noqa: E731
    boxes = [Box(b.class_id, w - b.x1, b.y0, w - b.x0, b.y1) for b in s.boxes]
    return _replace(
        s, rgb=flip(s.rgb), depth=flip(s.depth), valid=flip(s.valid), mask=flip(s.mask), boxes=boxes
    )


class BoxTransform:
    """``(sample, rng) -> sample`` at ``size``: clean boxes, fit, then (``augment``) random
    scale + random window, horizontal flip, brightness/contrast jitter."""

    def __init__(
        self,
        size: tuple[int, int],
        num_classes: int,
        fit: str = "resize",
        augment: Any = None,
    ) -> None:
        self.size, self.num_classes, self.fit, self.augment = tuple(size), num_classes, fit, augment

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.rgb.shape[:2]
        boxes, counts = clean_boxes(sample.boxes, h, w, self.num_classes)
        s = _replace(sample, boxes=boxes, meta={**sample.meta, "box_skipped": counts})
        s = fit_sample(s, self.size, self.fit)
        a = self.augment
        if a is None:
            return s
        lo, hi = a.scale
        scale = float(rng.uniform(lo, hi))
        if abs(scale - 1.0) > 1e-3:
            H, W = self.size
            s = fit_sample(s, (max(round(H * scale), 8), max(round(W * scale), 8)), "resize")
            s = random_window(s, self.size, rng)
        if a.hflip and rng.random() < 0.5:
            s = hflip(s)
        if a.color_jitter > 0:
            j = a.color_jitter
            gain, bias = rng.uniform(1 - j, 1 + j), rng.uniform(-j, j) * 255 * 0.5
            mean = s.rgb.mean()
            rgb = (s.rgb.astype(np.float32) - mean) * gain + mean + bias
            s = _replace(s, rgb=np.clip(rgb, 0, 255).astype(np.uint8))
        return s


def box_items(
    dataset: SampleDataset,
    size: tuple[int, int],
    fit: str = "resize",
    augment: Any = None,
    seed: int = 0,
) -> TorchSampleDataset:
    """Tensors for training/eval: image RGB in [0, 1] (the model normalises), depth, valid,
    boxes (N,5) ``[class_id, x0, y0, x1, y1]`` in input pixels, meta (with box counts)."""
    k = len(dataset.classes)
    return TorchSampleDataset(
        dataset,
        None,
        transform=BoxTransform(size, k, fit, augment),
        mean=ZERO_MEAN,
        std=UNIT_STD,
        seed=seed,
    )


def box_order(seed: int, epoch: int, n: int) -> list[int]:
    """The epoch order box training has always used (``EpochBatches(permutation=...)``)."""
    return np.random.default_rng([seed, epoch]).permutation(n).tolist()


class EpochItems(torch.utils.data.Dataset):
    """``box_items`` keyed by the engine sampler's ``(index, epoch)``: the epoch (which seeds
    the augmentation, with the index) is set before the item is made, in whichever process
    makes it."""

    def __init__(self, items: TorchSampleDataset) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, epoch = key
        self.items.set_epoch(int(epoch))
        return self.items[int(index)]


def open_box_dataset(
    cfg: Any, spec: str | None, classes: Sequence[str] | None = None
) -> SampleDataset:
    """The dataset of ``spec`` with the config's options (``depth=``, ``pseudo_depth=``,
    ``data_options``)."""
    if not spec:
        raise DealError("data: no dataset given (e.g. data=coco:./annotations.json depth=./depth)")
    from deal_ros.data.registry import build_dataset

    opts = dict(cfg.data_options)
    if cfg.depth:
        opts["depth"] = cfg.depth
    if cfg.pseudo_depth:
        opts["pseudo_depth"] = cfg.pseudo_depth
    ds = build_dataset(spec, classes=list(classes) if classes else cfg.classes, **opts)
    if len(ds) == 0:
        raise DealError(f"data '{spec}': holds no samples")
    if not ds.classes:
        raise DealError(f"data '{spec}': no classes (give classes=[...])")
    return ds
