"""Evaluation: COCO mask AP (pycocotools), and instance overlays as PNGs.

Predictions are made at the network input size and mapped back to each sample's own size
(undoing ``input.fit``: a stretch for "resize", the padding then a stretch for "pad"); the
ground truth are the sample's instance masks (``data.instance_ground_truth``). Both go to
pycocotools in memory (one COCO "image" per sample, category ids = class ids 1..K), and
``COCOeval`` reports mask AP (0.5:0.95), AP50, AP75, AP small/medium/large, and the box AP
of the same detections. pycocotools is the optional extra ``deal_ros[coco]``.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deal_ros.core.placement import Placement, placement
from deal_ros.errors import DealError
from deal_ros.infer.instances import draw_instances
from deal_ros.infer.postprocess import unplace_boxes
from deal_ros.instance.condinst import CondInst, Instances
from deal_ros.instance.data import box_items, instance_ground_truth

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _pycocotools():
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise DealError(
            "eval: COCO mask AP needs pycocotools (pip install pycocotools, or deal_ros[coco])"
        ) from None
    return mask_utils, COCO, COCOeval


def to_original(
    inst: Instances,
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    fit: str,
    mask_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """(masks (n,h,w) bool, boxes (n,4)) at the sample's size ``out_hw``: the input's
    placement undone (``deal_ros.core.placement``), masks resized bilinearly in torch (the
    torch-free twin is ``deal_ros.infer.postprocess.unplace``), boxes by ``unplace_boxes``."""
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
    return (probs > mask_threshold).cpu().numpy(), boxes


def _on_image(probs: torch.Tensor, where: Placement) -> torch.Tensor:
    """(n, H, W) maps at the input size -> (n, height, width) over the scaled image: the
    padding cut off (fit pad); zeros where a crop window left the image out (fit crop)."""
    top, left, height, width = where.top, where.left, where.height, where.width
    if top >= 0 and left >= 0:
        return probs[:, top : top + height, left : left + width]
    H, W = probs.shape[-2:]
    return F.pad(probs, (-left, left + width - W, -top, top + height - H))


def _rle(mask_utils, m: np.ndarray) -> dict[str, Any]:
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def coco_ap(
    gts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    preds: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
) -> dict[str, Any]:
    """COCO AP of ``preds[i]`` = (masks (n,h,w) bool, boxes (n,4) xyxy, scores, class ids)
    against ``gts[i]`` = (masks (m,h,w) bool, class ids, crowd flags); keys "segm" and "bbox"
    holding AP, AP50, AP75, APs, APm, APl (None where COCO has nothing to measure)."""
    mask_utils, COCO, COCOeval = _pycocotools()
    images, anns, dets = [], [], []
    for i, ((gm, gc, crowd), (pm, pb, ps, pc)) in enumerate(zip(gts, preds)):
        h, w = gm.shape[1:] if gm.ndim == 3 and len(gm) else pm.shape[1:]
        images.append({"id": i, "height": int(h), "width": int(w)})
        for m, c, cr in zip(gm, gc, crowd):
            r = _rle(mask_utils, m)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(c),
                    "segmentation": r,
                    "area": float(mask_utils.area(r)),
                    "bbox": [float(v) for v in mask_utils.toBbox(r)],
                    "iscrowd": int(cr),
                }
            )
        for m, b, s, c in zip(pm, pb, ps, pc):
            dets.append(
                {
                    "image_id": i,
                    "category_id": int(c),
                    "score": float(s),
                    "segmentation": _rle(mask_utils, m),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": k} for k in range(1, num_classes + 1)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    out: dict[str, Any] = {"images": len(images), "instances": len(anns), "detections": len(dets)}
    for kind in ("segm", "bbox"):
        if not dets or not anns:
            out[kind] = dict.fromkeys(AP_KEYS, 0.0 if anns else None)
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes([dict(d) for d in dets])
            ev = COCOeval(gt, dt, kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out[kind] = {k: (float(v) if v >= 0 else None) for k, v in zip(AP_KEYS, ev.stats[:6])}
    return out


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
    gts, preds = [], []
    in_hw = (cfg.input.height, cfg.input.width)
    for i, sample, inst in predict_dataset(model, dataset, cfg, device, limit, progress):
        gts.append(instance_ground_truth(dataset, i, sample))
        masks, boxes = to_original(
            inst, in_hw, sample.rgb.shape[:2], cfg.input.fit, cfg.infer.mask_threshold
        )
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
    in_hw = (cfg.input.height, cfg.input.width)
    paths = []
    for i, sample, inst in predict_dataset(model, dataset, cfg, device, n):
        masks, boxes = to_original(
            inst, in_hw, sample.rgb.shape[:2], cfg.input.fit, cfg.infer.mask_threshold
        )
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
