"""The demo's numbers against the scene generator's ground truth (no torch, no ROS).

* :func:`score_heldout`: the exported bundle (ONNX Runtime, the node's code path) on held-out
  generated scenes (other rooms, 1-3 objects): mask mIoU, the same scenes ``deal eval`` scores.
* :func:`score_pseudo_labels`: the pseudo labels ``deal pseudo`` wrote for the recorded
  frames, against the masks of the frames the camera published (matched by header stamp).
* :func:`score_masks`: the segmenter node's ``~/mask`` outputs on the replay, the same way.

mIoU is the dataset-level VOC mIoU of :class:`deal_ros.train.metrics.SegMetrics` (background
included; ignore = 255). Pseudo labels are scored on the pixels they label (255 = left out)
and ``coverage`` says which share that is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deal_ros.demo.takes import GroundTruth
from deal_ros.errors import DealError
from deal_ros.infer.postprocess import overlay
from deal_ros.infer.runtime import Runtime
from deal_ros.scene.generator import SceneGenerator
from deal_ros.train.metrics import SegMetrics

__all__ = ["score_heldout", "score_masks", "score_pseudo_labels"]

IGNORE = 255


def _summary(metrics: SegMetrics) -> dict[str, Any]:
    s = metrics.summary()
    return {
        "miou": s["miou"],
        "pixel_accuracy": s["pixel_accuracy"],
        "iou_by_class": s.get("iou_by_class", {}),
        "images": s["n_images"],
    }


def score_heldout(
    runtime: Runtime,
    n: int,
    seed: int,
    size: tuple[int, int],
    sheet_rows: int = 4,
    zoom: float = 1.0,
) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
    """Mask mIoU of ``runtime`` on ``n`` held-out scenes (``scene:n=..,seed=..,size=..,zoom=..``
    with the bundle's classes), the mIoU of an all-background prediction on them (what a score must
    beat), and rows ``image | ground truth | prediction`` for a contact sheet."""
    b = runtime.bundle
    gen = SceneGenerator(classes=b.classes, size=size, seed=seed, zoom=zoom)
    metrics = SegMetrics(b.num_classes + 1, class_names=b.class_names)
    background = SegMetrics(b.num_classes + 1)
    rows = []
    for i in range(n):
        scene = gen.sample(i)
        result = runtime.segment(scene.rgb, cam=False, overlay=i < sheet_rows)
        metrics.update(result.mask, scene.mask)
        background.update(np.zeros_like(scene.mask), scene.mask)
        if i < sheet_rows:
            gt = overlay(
                scene.rgb, np.where(scene.mask == IGNORE, 0, scene.mask), runtime.palette, 0.6
            )
            rows.append([scene.rgb, gt, result.overlay])
    return {**_summary(metrics), "all_background_miou": background.summary()["miou"]}, rows


def _read_label(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DealError(f"pseudo label {path}: not found")
    with Image.open(path) as img:
        return np.asarray(img, dtype=np.uint8)


def score_pseudo_labels(
    pseudo_dir: Path, episodes_dir: Path, classes: Sequence[str], gt: GroundTruth
) -> dict[str, Any]:
    """Pseudo labels (``<index:06d>.png`` of the episodes dataset, as ``deal pseudo`` numbers
    them) against the camera's ground truth. Also counts the recorded frames that match a
    published frame (``frames_matched``) and those showing their episode's label
    (``label_purity``)."""
    from deal_ros.data.adapters.episodes import EpisodesDataset

    classes = list(classes)
    data = EpisodesDataset(episodes_dir, classes=classes)
    metrics = SegMetrics(len(classes) + 1, class_names=["background", *classes])
    matched = pure = labelled = total = 0
    for i in range(len(data)):
        sample = data[i]
        stamp = int(sample.meta["stamp_ns"])
        mask = gt.mask(stamp, classes)
        if mask is None:
            continue
        matched += 1
        shown = gt.class_of(stamp)
        pure += int(shown is not None and sample.labels[classes.index(shown)] > 0)
        label = _read_label(Path(pseudo_dir) / f"{i:06d}.png")
        if label.shape != mask.shape:
            raise DealError(f"pseudo label {i:06d}.png: size {label.shape} != frame {mask.shape}")
        keep = label != IGNORE
        metrics.update(np.where(keep, label, 0), np.where(keep, mask, IGNORE))
        labelled += int((keep & (mask != IGNORE)).sum())
        total += int((mask != IGNORE).sum())
    out = _summary(metrics)
    out.update(
        frames=len(data),
        frames_matched=matched,
        label_purity=pure / max(matched, 1),
        coverage=labelled / max(total, 1),
    )
    return out


def score_masks(
    masks: Mapping[int, np.ndarray], gt: GroundTruth, classes: Sequence[str]
) -> dict[str, Any]:
    """The segmenter's masks (by input stamp) against the ground truth of those frames."""
    metrics = SegMetrics(len(classes) + 1, class_names=["background", *classes])
    for stamp, pred in sorted(masks.items()):
        mask = gt.mask(stamp, classes)
        if mask is not None and mask.shape == pred.shape:
            metrics.update(pred, mask)
    return _summary(metrics)
