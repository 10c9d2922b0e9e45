"""Evaluation of a box run's CondInst: COCO mask AP, and instance overlays as PNGs.

Predictions are made at the network input size and mapped back to each sample's own size
(undoing ``input.fit``: a stretch for "resize", the padding then a stretch for "pad"); the
ground truth are the sample's instance masks (``deal_ros.eval.instances``). Both go to
:func:`deal_ros.eval.coco.coco_ap` (the one COCO AP of the package, shared with the bundle
evaluation): mask AP (0.5:0.95), AP50, AP75, AP small/medium/large, and the box AP of the
same detections.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deal_ros.core.boxes import crop_to_boxes
from deal_ros.core.placement import Placement, placement
from deal_ros.eval.coco import AP_KEYS as AP_KEYS  # its old home
from deal_ros.eval.coco import coco_ap
from deal_ros.eval.instances import instance_ground_truth
from deal_ros.infer.instances import draw_instances
from deal_ros.infer.postprocess import unplace_boxes
from deal_ros.instance.condinst import CondInst, Instances
from deal_ros.instance.data import box_items

__all__ = [
    "coco_ap",
    "evaluate_model",
    "predict_dataset",
    "score_instances",
    "to_original",
    "write_overlays",
]


def to_original(
    inst: Instances,
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    fit: str,
    mask_threshold: float = 0.5,
    box_margin: float = -1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(masks (n,h,w) bool, boxes (n,4)) at the sample's size ``out_hw``: the input's
    placement undone (``deal_ros.core.placement``), masks resized bilinearly in torch (the
    torch-free twin is ``deal_ros.infer.postprocess.unplace``), boxes by ``unplace_boxes``;
    with ``box_margin`` >= 0 each mask is then zeroed outside its box widened by that many
    input pixels (``deal_ros.core.boxes.crop_to_box``, as ``deal_ros.infer.instances`` does)."""
    h, w = out_hw
    if len(inst) == 0:
        return np.zeros((0, h, w), bool), np.zeros((0, 4), np.float32)
    where = placement(out_hw, in_hw, fit)
    probs = _on_image(inst.masks, where)
    if probs.shape[-2:] != (h, w):
        probs = F.interpolate(probs[:, None], size=(h, w), mode="bilinear", align_corners=False)[
            :, 0
        ]
    boxes = unplace_boxes(inst.boxes.cpu().numpy(), where)
    masks = (probs > mask_threshold).cpu().numpy()
    return crop_to_boxes(masks, boxes, box_margin, w / max(where.width, 1)), boxes


def _on_sample(inst: Instances, sample, cfg) -> tuple[np.ndarray, np.ndarray]:
    """:func:`to_original` of ``inst`` (at the run's input) onto ``sample``, with the run's
    fit, mask threshold and box margin."""
    in_hw = (cfg.input.height, cfg.input.width)
    i = cfg.infer
    return to_original(
        inst, in_hw, sample.rgb.shape[:2], cfg.input.fit, i.mask_threshold, i.box_margin
    )


def _on_image(probs: torch.Tensor, where: Placement) -> torch.Tensor:
    """(n, H, W) maps at the input size -> (n, height, width) over the scaled image: the
    padding cut off (fit pad); zeros where a crop window left the image out (fit crop)."""
    top, left, height, width = where.top, where.left, where.height, where.width
    if top >= 0 and left >= 0:
        return probs[:, top : top + height, left : left + width]
    H, W = probs.shape[-2:]
    return F.pad(probs, (-left, left + width - W, -top, top + height - H))


@torch.no_grad()
def predict_dataset(
    model: CondInst, dataset, cfg, device, limit: int | None = None, progress: bool = False
):
    """Yields (index, original sample, Instances at the input size)."""
    from tqdm import tqdm

    size = (cfg.input.height, cfg.input.width)
    items = box_items(dataset, size, cfg.input.fit, None, cfg.seed)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    model.eval()
    for i in tqdm(range(n), desc="eval box", disable=not progress, leave=False):
        sample = dataset[i]
        image = items[i]["image"][None].to(device)
        yield i, sample, model.predict(image, cfg.infer)[0]


def evaluate_model(
    model: CondInst, dataset, cfg, device="cpu", limit: int | None = None, progress: bool = False
) -> dict[str, Any]:
    """COCO mask AP (and box AP) of ``model`` on ``dataset`` (see the module docstring)."""
    return score_instances(
        dataset, cfg, predict_dataset(model, dataset, cfg, device, limit, progress)
    )


def score_instances(
    dataset, cfg, predicted: Iterable[tuple[int, Any, Instances]]
) -> dict[str, Any]:
    """COCO AP of (index, original sample, Instances at the input size) triples against the
    dataset's instance ground truth: the scoring half of :func:`evaluate_model` (the masks
    mapped back by :func:`to_original`), so known predictions can be scored the same way."""
    gts, preds = [], []
    for i, sample, inst in predicted:
        gts.append(instance_ground_truth(dataset, i, sample))
        masks, boxes = _on_sample(inst, sample, cfg)
        preds.append((masks, boxes, inst.scores.cpu().numpy(), inst.classes.cpu().numpy()))
    return coco_ap(gts, preds, len(dataset.classes))


# ------------------------------------------------------------------ overlays
def write_overlays(
    model: CondInst, dataset, cfg, out_dir: Path, n: int = 8, device="cpu", min_score: float = 0.3
) -> list[Path]:
    """PNG overlays of the first ``n`` samples (detections scoring >= ``min_score``; the
    overlay of ``deal infer``, with the ground-truth boxes as thin white outlines)."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, sample, inst in predict_dataset(model, dataset, cfg, device, n):
        masks, boxes = _on_sample(inst, sample, cfg)
        keep = (inst.scores >= min_score).cpu().numpy()
        img = draw_instances(
            sample.rgb,
            masks[keep],
            boxes[keep],
            inst.scores.cpu().numpy()[keep],
            inst.classes.cpu().numpy()[keep],
            list(dataset.classes),
            outlines=[(b.x0, b.y0, b.x1, b.y1) for b in sample.boxes],
        )
        path = out_dir / f"{i:04d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths
