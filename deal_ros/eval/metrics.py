"""Segmentation metrics: confusion matrix, IoU, mIoU, pixel accuracy, the sonar study's
multi-class-only mIoU, and the CAM threshold sweep used to judge pseudo-label quality.

Conventions:

* Confusion matrix: rows = ground truth, columns = prediction; pixels whose gt equals
  ``ignore_index`` are left out. Accumulated over a whole dataset (sum of per-image matrices),
  then IoU_c = TP_c / (TP_c + FP_c + FN_c) and mIoU = mean over classes with a defined IoU
  (classes absent from both gt and prediction give NaN and are skipped) — the PASCAL VOC way.
* Multi-class-only mIoU (sea-floor sonar WSSS study): plain mIoU is inflated when most images
  hold one class, so the same dataset-level mIoU is also computed over the images whose gt holds
  at least two distinct classes among its non-ignored pixels. Every class counts, background
  included (as in the study): an image of background + one object is multi-class; an image of
  sand only is not.

numpy arrays and torch tensors are both accepted; torch is never imported by this module (a
tensor is recognised through ``sys.modules``), and tensors are counted on their own device.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from deal_ros.errors import DealError

__all__ = [
    "MetricsInputError",
    "SegMetrics",
    "cam_threshold_sweep",
    "confusion_matrix",
    "ground_truth_mask",
    "iou_per_class",
    "miou",
    "miou_multiclass_only",
    "pixel_accuracy",
]

DEFAULT_THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


class MetricsInputError(DealError, ValueError):
    """Unusable input to a metric: shapes, dtypes, class ids out of range."""


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _check_pair(pred: Any, gt: Any, num_classes: int, ignore_index: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise MetricsInputError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise MetricsInputError(f"num_classes must be >= 1, got {num_classes}")
    if tuple(pred.shape) != tuple(gt.shape):
        raise MetricsInputError(
            f"pred shape {tuple(pred.shape)} does not match gt shape {tuple(gt.shape)}"
        )
    for name, x in (("pred", pred), ("gt", gt)):
        if _is_tensor(x):
            ok = not (x.dtype.is_floating_point or x.dtype.is_complex)
        else:
            ok = np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_
        if not ok:
            raise MetricsInputError(f"{name} must hold integer class ids, got dtype {x.dtype}")


def _value_error(name: str, bad: np.ndarray, values: np.ndarray, allowed: str) -> None:
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    raise MetricsInputError(
        f"{name} holds {int(bad.sum())} value(s) outside {allowed}, first {int(values[idx])} "
        f"at index {idx}"
    )


def _confusion_numpy(pred: np.ndarray, gt: np.ndarray, c: int, ignore: int) -> np.ndarray:
    pred = pred.astype(np.int64, copy=False)
    gt = gt.astype(np.int64, copy=False)
    bad = (pred < 0) | (pred >= c)
    if bad.any():
        _value_error("pred", bad, pred, f"[0, {c})")
    valid = gt != ignore
    bad = valid & ((gt < 0) | (gt >= c))
    if bad.any():
        _value_error("gt", bad, gt, f"[0, {c}) and ignore_index {ignore}")
    idx = gt[valid] * c + pred[valid]
    return np.bincount(idx, minlength=c * c).reshape(c, c).astype(np.int64)


def _confusion_torch(pred: Any, gt: Any, c: int, ignore: int) -> np.ndarray:
    import torch

    pred = torch.as_tensor(pred).long()
    gt = torch.as_tensor(gt, device=pred.device).long()
    bad = (pred < 0) | (pred >= c)
    if bool(bad.any()):
        _value_error("pred", bad.cpu().numpy(), pred.cpu().numpy(), f"[0, {c})")
    valid = gt != ignore
    bad = valid & ((gt < 0) | (gt >= c))
    if bool(bad.any()):
        _value_error("gt", bad.cpu().numpy(), gt.cpu().numpy(), f"[0, {c}) and ignore {ignore}")
    idx = gt[valid] * c + pred[valid]
    conf = torch.bincount(idx, minlength=c * c).reshape(c, c)
    return conf.cpu().numpy().astype(np.int64)


def confusion_matrix(pred: Any, gt: Any, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """(C, C) int64 counts, rows = gt class, columns = predicted class, ignored gt left out.

    ``pred`` and ``gt`` are integer arrays (or torch tensors) of the same shape, any number of
    dimensions (one image or a batch). Predicted ids must lie in [0, C); gt ids in [0, C) or
    equal ``ignore_index``; anything else raises :class:`MetricsInputError`.
    """
    if not _is_tensor(pred):
        pred = np.asarray(pred)
    if not _is_tensor(gt):
        gt = np.asarray(gt)
    _check_pair(pred, gt, num_classes, ignore_index)
    c = int(num_classes)
    if _is_tensor(pred) or _is_tensor(gt):
        return _confusion_torch(pred, gt, c, ignore_index)
    return _confusion_numpy(np.asarray(pred), np.asarray(gt), c, ignore_index)


def _check_conf(conf: Any) -> np.ndarray:
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise MetricsInputError(f"confusion matrix must be square (C, C), got {conf.shape}")
    return conf.astype(np.float64)


def iou_per_class(conf: Any) -> np.ndarray:
    """IoU_c = TP / (TP + FP + FN) per class, (C,) float64; NaN for a class absent from both
    gt and prediction (a class only predicted, or only in gt, gets 0)."""
    conf = _check_conf(conf)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    out = np.full(conf.shape[0], np.nan)
    np.divide(tp, union, out=out, where=union > 0)
    return out


def miou(conf: Any) -> float:
    """Mean IoU over the classes with a defined IoU (nanmean); NaN if there is none."""
    iou = iou_per_class(conf)
    return float(np.mean(iou[~np.isnan(iou)])) if (~np.isnan(iou)).any() else float("nan")


def pixel_accuracy(conf: Any) -> float:
    """Correct non-ignored pixels / all non-ignored pixels; NaN when there are none."""
    conf = _check_conf(conf)
    total = conf.sum()
    return float(np.trace(conf) / total) if total > 0 else float("nan")


def _is_multiclass(conf: np.ndarray) -> bool:
    """gt holds >= 2 distinct classes among its non-ignored pixels (background counts)."""
    return int((conf.sum(axis=1) > 0).sum()) >= 2


def miou_multiclass_only(
    preds: Iterable[Any], gts: Iterable[Any], num_classes: int, ignore_index: int = 255
) -> float:
    """Dataset-level mIoU over the images whose gt holds at least two distinct classes among
    its non-ignored pixels (background counts as a class); single-class images are left out.
    ``preds``/``gts`` are per-image (H, W) maps. NaN when no image is multi-class."""
    metrics = SegMetrics(num_classes, ignore_index=ignore_index)
    for pred, gt in zip(preds, gts, strict=True):
        metrics.update(pred, gt)
    return miou(metrics.conf_multiclass)


class SegMetrics:
    """Accumulates per-image confusion matrices: over all images and over multi-class images
    only (see the module docstring).

    ``update(pred, gt)`` takes one image (H, W) or a batch (B, H, W), which counts as B images.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise MetricsInputError(f"num_classes must be an int, got {num_classes!r}")
        if num_classes < 1:
            raise MetricsInputError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise MetricsInputError(
                f"class_names has {len(class_names)} names for num_classes={num_classes}"
            )
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.reset()

    def reset(self) -> None:
        c = self.num_classes
        self.conf = np.zeros((c, c), np.int64)
        self.conf_multiclass = np.zeros((c, c), np.int64)
        self.n_images = 0
        self.n_multiclass_images = 0

    def update(self, pred: Any, gt: Any) -> None:
        pred = pred if _is_tensor(pred) else np.asarray(pred)
        gt = gt if _is_tensor(gt) else np.asarray(gt)
        if tuple(pred.shape) != tuple(gt.shape):
            raise MetricsInputError(
                f"pred shape {tuple(pred.shape)} does not match gt shape {tuple(gt.shape)}"
            )
        if len(gt.shape) == 3:
            for i in range(gt.shape[0]):
                self.update(pred[i], gt[i])
            return
        if len(gt.shape) != 2:
            raise MetricsInputError(
                f"SegMetrics.update expects (H, W) or (B, H, W) maps, got shape {tuple(gt.shape)}"
            )
        conf = confusion_matrix(pred, gt, self.num_classes, self.ignore_index)
        self.conf += conf
        self.n_images += 1
        if _is_multiclass(conf):
            self.conf_multiclass += conf
            self.n_multiclass_images += 1

    def summary(self) -> dict[str, Any]:
        """miou, iou_per_class (list, NaN for absent classes; also by name when class names
        were given), pixel_accuracy, miou_multiclass_only, n_images, n_multiclass_images."""
        iou = iou_per_class(self.conf)
        out: dict[str, Any] = {
            "miou": miou(self.conf),
            "iou_per_class": [float(v) for v in iou],
            "pixel_accuracy": pixel_accuracy(self.conf),
            "miou_multiclass_only": miou(self.conf_multiclass),
            "n_images": self.n_images,
            "n_multiclass_images": self.n_multiclass_images,
        }
        if self.class_names is not None:
            out["iou_by_class"] = dict(zip(self.class_names, out["iou_per_class"], strict=True))
        return out


def _to_numpy(x: Any) -> np.ndarray:
    if _is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _sweep_image(
    cam: np.ndarray, label: np.ndarray, gt: np.ndarray, thr: np.ndarray, ignore: int, where: str
) -> np.ndarray:
    """(T+1, C, C) histogram H[i, g, a] of valid pixels with gt g, best present class a and
    i = number of thresholds below that class's score (so the pixel is foreground a for the
    first i thresholds and background afterwards)."""
    k = cam.shape[0] if cam.ndim == 3 else -1
    c = k + 1
    if k < 1 or label.shape != (k,) or gt.shape != cam.shape[1:]:
        raise MetricsInputError(
            f"cam_threshold_sweep: {where}: cams {cam.shape} (K,H,W), label {label.shape} (K,) "
            f"and gt {gt.shape} (H,W) do not fit together"
        )
    if not np.isfinite(cam).all():
        raise MetricsInputError(f"cam_threshold_sweep: {where}: cams hold NaN/inf")
    if cam.size and (cam.min() < -1e-6 or cam.max() > 1 + 1e-6):
        raise MetricsInputError(
            f"cam_threshold_sweep: {where}: cams must lie in [0, 1], got "
            f"[{cam.min():.4g}, {cam.max():.4g}]"
        )
    present = np.flatnonzero(np.asarray(label) > 0)
    valid = gt != ignore
    g = gt[valid].astype(np.int64)
    bad = (g < 0) | (g >= c)
    if bad.any():
        raise MetricsInputError(
            f"cam_threshold_sweep: {where}: gt holds {int(bad.sum())} id(s) outside [0, {c}) "
            f"and ignore_index {ignore}, first {int(g[bad][0])}"
        )
    if present.size == 0:
        score = np.zeros(g.shape, np.float64)  # score 0: background wins at every threshold
        cls = np.zeros(g.shape, np.int64)
    else:
        sub = cam[present][:, valid]  # (P, n): absent classes are excluded
        best = np.argmax(sub, axis=0)
        score = np.take_along_axis(sub, best[None], 0)[0]
        cls = present[best] + 1
    below = np.searchsorted(thr, score, side="left")  # thresholds t < score: foreground
    idx = (below * c + g) * c + cls
    return np.bincount(idx, minlength=(thr.size + 1) * c * c).reshape(thr.size + 1, c, c)


def cam_threshold_sweep(
    cams_list: Sequence[Any],
    labels: Sequence[Any],
    gts: Sequence[Any],
    thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
    ignore_index: int = 255,
) -> dict[str, Any]:
    """Pseudo-label mIoU of CAMs as a function of the background threshold (the standard WSSS
    diagnostic, e.g. SEAM's 0.26).

    For each image: cams (K, H, W) in [0, 1], label (K,) multi-hot, gt (H, W) with 0 =
    background and k+1 = class k (C = K+1 classes, ``ignore_index`` left out). At threshold t
    the prediction is argmax over [t, cams of the classes present in the label]: classes absent
    from the label are excluded, and a tie with t goes to background. mIoU is dataset-level
    (confusion summed over images) for every threshold, computed in one pass per image.

    Returns dict(best_threshold, best_miou, thresholds (ascending), mious (per threshold)).
    The lowest threshold wins a tie for best.
    """
    thr = np.sort(np.asarray(thresholds, dtype=np.float64).reshape(-1))
    if thr.size == 0 or not np.isfinite(thr).all():
        raise MetricsInputError(f"cam_threshold_sweep: thresholds must be finite, got {thr}")
    if not (len(cams_list) == len(labels) == len(gts)) or len(cams_list) == 0:
        raise MetricsInputError(
            f"cam_threshold_sweep: need as many cams ({len(cams_list)}), labels ({len(labels)}) "
            f"and gts ({len(gts)}), at least one"
        )
    hist = None
    for i, (cam, label, gt) in enumerate(zip(cams_list, labels, gts, strict=True)):
        cam, label, gt = _to_numpy(cam), _to_numpy(label).reshape(-1), _to_numpy(gt)
        h = _sweep_image(cam.astype(np.float64), label, gt, thr, ignore_index, f"image {i}")
        if hist is not None and h.shape != hist.shape:
            raise MetricsInputError(
                f"cam_threshold_sweep: image {i} has {h.shape[1] - 1} classes, image 0 has "
                f"{hist.shape[1] - 1}"
            )
        hist = h if hist is None else hist + h
    # foreground part of threshold j: pixels with below > j; background part: below <= j
    fg = np.cumsum(hist[::-1], axis=0)[::-1][1:]  # (T, C, C): sum over i > j
    bg = np.cumsum(hist.sum(axis=2), axis=0)[:-1]  # (T, C): sum over i <= j, all classes
    confs = fg.copy()
    confs[:, :, 0] += bg
    mious = np.array([miou(conf) for conf in confs])
    best = int(np.nanargmax(mious)) if (~np.isnan(mious)).any() else 0
    return {
        "best_threshold": float(thr[best]),
        "best_miou": float(mious[best]),
        "thresholds": thr,
        "mious": mious,
    }


def ground_truth_mask(sample: Any, index: int, where: str) -> np.ndarray:
    """``sample.mask``, or a :class:`DealError` naming ``where`` and the sample without one."""
    if sample.mask is None:
        raise DealError(
            f"{where}: sample {index} has no ground-truth mask (evaluation needs data with "
            "masks, e.g. scene:, voc:, coco:, bop:)"
        )
    return sample.mask
