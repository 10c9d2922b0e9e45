"""The instance ground truth of a sample, what COCO mask AP is scored against (torch-free).

* Scene generator data: its exact instance masks.
* COCO data: the annotations' polygons / RLE (crowd flags kept).
* Other sources (no instance masks stored): the class-mask pixels of each box's class inside
  the box (an approximation, exact when same-class boxes do not overlap).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deal_ros.data.sample import Sample, SampleDataset
from deal_ros.errors import DealError

__all__ = ["instance_ground_truth"]


def _unwrap(dataset: Any) -> Any:
    while hasattr(dataset, "dataset") and not hasattr(dataset, "generator"):
        dataset = dataset.dataset
    return dataset


def instance_ground_truth(
    dataset: SampleDataset, index: int, sample: Sample
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(masks (N,H,W) bool, class ids (N,), crowd flags (N,)) of item ``index``.

    Scene generator: its exact instance masks. COCO: the annotations' polygons / RLE.
    Other sources (no instance masks stored): the class-mask pixels of each box's class
    inside the box (an approximation, exact when same-class boxes do not overlap)."""
    base = _unwrap(dataset)
    h, w = sample.rgb.shape[:2]
    if hasattr(base, "generator"):
        scene = base.generator.sample(int(sample.meta.get("index", index)))
        m = scene.instance_masks.astype(bool)
        return m, scene.instance_classes.astype(np.int64), np.zeros(len(m), bool)
    if hasattr(base, "images") and hasattr(base, "cat_name"):
        return _coco_instances(base, index, h, w)
    if sample.mask is None:
        raise DealError(
            f"eval: {getattr(dataset, 'source', 'dataset')} item {index} has no masks to "
            "evaluate against (mask AP needs instance or class masks)"
        )
    masks, cls = [], []
    for b in sample.boxes:
        m = np.zeros((h, w), bool)
        y0, y1 = max(math.floor(b.y0), 0), min(math.ceil(b.y1), h)
        x0, x1 = max(math.floor(b.x0), 0), min(math.ceil(b.x1), w)
        m[y0:y1, x0:x1] = sample.mask[y0:y1, x0:x1] == b.class_id
        masks.append(m)
        cls.append(b.class_id)
    arr = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    return arr, np.asarray(cls, np.int64), np.zeros(len(cls), bool)


def _coco_instances(base: Any, index: int, h: int, w: int):
    from deal_ros.data.adapters.coco import polygon_mask, rle_mask

    masks, cls, crowd = [], [], []
    for ann in base.images[index]["anns"]:
        cid = base.map.id_of(base.cat_name[int(ann["category_id"])])
        seg = ann.get("segmentation")
        if not cid or seg is None:
            continue
        where = f"coco annotation {ann.get('id')} in {base.json_path}"
        m = rle_mask(seg, h, w, where) if isinstance(seg, dict) else polygon_mask(seg, h, w)
        masks.append(m)
        cls.append(cid)
        crowd.append(bool(ann.get("iscrowd", 0)))
    arr = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    return arr, np.asarray(cls, np.int64), np.asarray(crowd, bool)
