"""COCO mask and box AP (pycocotools), in memory: one COCO "image" per sample, category ids =
class ids 1..K. ``COCOeval`` reports AP (0.5:0.95), AP50, AP75, AP small/medium/large of the
masks (``segm``) and of the boxes (``bbox``) of the same detections. Torch-free (the instance
bundle is scored with it on the robot, ``deal eval model=``, and the box method's runs with
``deal eval run=``). pycocotools is the optional extra ``deal_ros[coco]``.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from deal_ros.errors import DealError

__all__ = ["AP_KEYS", "coco_ap"]

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
