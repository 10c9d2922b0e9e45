"""The text tables ``deal eval`` prints (percentages): ``format_results`` (semantic: CAM
pseudo labels, segmenter, pseudo label folder, bundle masks) and ``format_ap`` (instances: COCO
mask and box AP). No torch, so a bundle's evaluation can print them on the robot."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_ap", "format_results"]


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:6.2f}"


def format_results(results: dict[str, Any]) -> str:
    """A plain-text table of ``evaluate_run``-style results (percentages)."""
    lines = []
    cam = results.get("cam")
    if cam:
        lines.append(f"CAM pseudo labels ({cam['images']} images)")
        lines.append(f"  CAM mIoU, best threshold {cam['cam_best_threshold']:.2f}   "
                     f"{_pct(cam['cam_best_miou'])}")  # fmt: skip
        lines.append(f"  CAM mIoU at bg_threshold {cam['bg_threshold']:.2f}     "
                     f"{_pct(cam['cam_miou_at_threshold'])}")  # fmt: skip
        tag = "threshold + CRF" if cam["pseudo_crf"] else "threshold"
        lines.append(f"  pseudo-label mIoU ({tag})      {_pct(cam['pseudo_miou'])}"
                     f"   coverage {_pct(cam['pseudo_coverage'])} %")  # fmt: skip
        lines.append(f"  pseudo-label multi-class-only    "
                     f"{_pct(cam['pseudo_miou_multiclass_only'])}")  # fmt: skip
    titles = (("seg", "Segmenter"), ("pseudo_dir", "Pseudo label folder"),
              ("bundle", "Bundle masks"))  # fmt: skip
    for key, title in titles:
        m = results.get(key)
        if not m:
            continue
        lines.append(f"{title} ({m['n_images']} images, {m['n_multiclass_images']} multi-class)")
        lines.append(f"  mIoU                             {_pct(m['miou'])}")
        lines.append(f"  multi-class-only mIoU            {_pct(m['miou_multiclass_only'])}")
        lines.append(f"  pixel accuracy                   {_pct(m['pixel_accuracy'])}")
        if "coverage" in m:
            lines.append(f"  coverage                         {_pct(m['coverage'])}")
        for name, v in (m.get("iou_by_class") or {}).items():
            lines.append(f"    IoU {name:<28} {_pct(v)}")
    return "\n".join(lines)


def format_ap(results: dict[str, Any]) -> str:
    """Counts, then mask and box AP, AP50, AP75 (percent) of ``coco_ap``-style results."""
    lines = [
        f"{results.get('images', 0)} images, {results.get('instances', 0)} instances, "
        f"{results.get('detections', 0)} detections"
    ]
    for kind, name in (("segm", "mask"), ("bbox", "box")):
        r = results.get(kind) or {}
        vals = "  ".join(
            f"{k} {100 * r[k]:.1f}" if r.get(k) is not None else f"{k} -"
            for k in ("AP", "AP50", "AP75")
        )
        lines.append(f"{name:4s} {vals}")
    return "\n".join(lines)
