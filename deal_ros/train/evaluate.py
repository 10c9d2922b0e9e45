"""Evaluation on data with ground-truth masks (``deal eval``, validation, ``deal bench train``).

* ``evaluate_cams``: pseudo-label quality of a CAM net. The multi-scale CAMs are swept over
  background thresholds (``cam_threshold_sweep``: best threshold and its mIoU, and the mIoU at
  the configured ``labeling.bg_threshold``); then the full pseudo-labelling (threshold + dense
  CRF + ignores) is scored: mIoU over the pixels it labels, and the fraction it labels.
* ``evaluate_seg``: the segmenter: mIoU, per-class IoU, multi-class-only mIoU, pixel accuracy.
* ``evaluate_pseudo_dir``: an existing pseudo label folder against the masks of its data.

Ground truth: 0 background, k = class k, 255 ignore; image-level labels come from the samples
(the same labels training saw). ``limit`` evaluates the first N samples only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from deal_ros.data.sample import SampleDataset
from deal_ros.errors import DealError
from deal_ros.eval.metrics import (
    DEFAULT_THRESHOLDS,
    SegMetrics,
    cam_threshold_sweep,
    ground_truth_mask,
)
from deal_ros.train.config import TrainConfig
from deal_ros.train.data import IGNORE
from deal_ros.train.stages.pseudo import PseudoLabels, batches, label_from_cams, sample_cams


def _names(classes: Sequence[str]) -> list[str]:
    return ["background", *classes]


def _n(dataset: SampleDataset, limit: int | None) -> int:
    return len(dataset) if not limit else min(len(dataset), int(limit))


class _Head:
    """The first ``n`` samples of a dataset."""

    def __init__(self, ds: SampleDataset, n: int) -> None:
        self.ds, self.n, self.classes = ds, n, ds.classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if i >= self.n:
            raise IndexError(i)
        return self.ds[i]


def evaluate_cams(
    net: torch.nn.Module,
    dataset: SampleDataset,
    cfg: TrainConfig,
    device: torch.device | str = "cpu",
    progress: bool = False,
    limit: int | None = None,
    crf: bool | None = None,
) -> dict[str, Any]:
    """CAM threshold sweep + refined pseudo-label scores (see the module docstring)."""
    lab = cfg.labeling
    if crf is not None:
        import dataclasses

        lab = dataclasses.replace(lab, crf=crf)
    device = torch.device(device)
    net = net.to(device).eval()
    size = (cfg.input.height, cfg.input.width)
    n = _n(dataset, limit)
    cams_all, labels_all, gts = [], [], []
    pseudo = SegMetrics(len(dataset.classes) + 1, class_names=_names(dataset.classes))
    labelled, total = 0, 0
    bar = tqdm(total=n, desc="eval cams", unit="img", disable=not progress)
    for chunk in batches(_Head(dataset, n), max(1, lab.batch_size)):
        cams = sample_cams(net, [s for _, s in chunk], size, lab, device)
        for (i, s), c in zip(chunk, cams):
            gt = ground_truth_mask(s, i, "eval")
            cams_all.append(c.astype(np.float32))
            labels_all.append(np.asarray(s.labels))
            gts.append(gt)
            label = label_from_cams(s.rgb, c, s.labels, lab)
            keep = label != IGNORE
            pseudo.update(np.where(keep, label, 0), np.where(keep, gt, IGNORE))
            labelled += int((keep & (gt != IGNORE)).sum())
            total += int((gt != IGNORE).sum())
        bar.update(len(chunk))
    bar.close()
    thr = np.unique(np.append(DEFAULT_THRESHOLDS, round(lab.bg_threshold, 4)))
    sweep = cam_threshold_sweep(cams_all, labels_all, gts, thresholds=thr)
    at = float(sweep["mious"][int(np.argmin(np.abs(sweep["thresholds"] - lab.bg_threshold)))])
    summary = pseudo.summary()
    return {
        "images": n,
        "cam_best_threshold": sweep["best_threshold"],
        "cam_best_miou": sweep["best_miou"],
        "bg_threshold": lab.bg_threshold,
        "cam_miou_at_threshold": at,
        "sweep": {f"{t:.2f}": float(m) for t, m in zip(sweep["thresholds"], sweep["mious"])},
        "pseudo_crf": lab.crf,
        "pseudo_miou": summary["miou"],
        "pseudo_miou_multiclass_only": summary["miou_multiclass_only"],
        "pseudo_iou_by_class": summary.get("iou_by_class"),
        "pseudo_pixel_accuracy": summary["pixel_accuracy"],
        "pseudo_coverage": labelled / max(total, 1),
    }


@torch.no_grad()
def evaluate_seg(
    net: torch.nn.Module,
    dataset: SampleDataset,
    size: tuple[int, int],
    device: torch.device | str = "cpu",
    progress: bool = False,
    limit: int | None = None,
    flip: bool = False,
) -> dict[str, Any]:
    """Segmenter metrics (SegMetrics summary) at each image's own resolution."""
    from deal_ros.train.predict import seg_probs

    device = torch.device(device)
    net = net.to(device).eval()
    metrics = SegMetrics(len(dataset.classes) + 1, class_names=_names(dataset.classes))
    n = _n(dataset, limit)
    for i in tqdm(range(n), desc="eval seg", unit="img", disable=not progress):
        s = dataset[i]
        gt = ground_truth_mask(s, i, "eval")
        probs = seg_probs(net, s.rgb, size, device, flip=flip)
        metrics.update(probs.argmax(0).astype(np.int64), gt)
    return metrics.summary()


def evaluate_pseudo_dir(folder: str | Path, dataset: SampleDataset) -> dict[str, Any]:
    """An existing pseudo label folder against the masks of the same data."""
    labels = PseudoLabels(folder)
    labels.check(dataset)
    metrics = SegMetrics(len(dataset.classes) + 1, class_names=_names(dataset.classes))
    labelled, total = 0, 0
    for i in range(len(dataset)):
        gt = ground_truth_mask(dataset[i], i, f"pseudo labels {folder}")
        label = labels(i)
        if label.shape != gt.shape:
            raise DealError(f"pseudo label {labels.path(i)}: size {label.shape} != mask {gt.shape}")
        keep = label != IGNORE
        metrics.update(np.where(keep, label, 0), np.where(keep, gt, IGNORE))
        labelled += int((keep & (gt != IGNORE)).sum())
        total += int((gt != IGNORE).sum())
    out = metrics.summary()
    out["coverage"] = labelled / max(total, 1)
    return out
