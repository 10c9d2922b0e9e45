"""Axis-aligned boxes in numpy: pairwise IoU and greedy class-aware NMS (no torch, no ROS).

One implementation for training-side decoding (``deal_ros.instance.inference.nms`` wraps it)
and for the ONNX runtime (``deal_ros.infer.instances``). Boxes are (n, 4) x0, y0, x1, y1 with
exclusive x1, y1 (area = (x1 - x0) * (y1 - y0)).

    IoU(a, b) = |a ∩ b| / max(|a| + |b| - |a ∩ b|, 1e-9)

``crop_to_box`` zeros a mask outside its (predicted) box, widened by ``margin`` pixels: the
box head's extent bounds the instance, as in Mask R-CNN, where the mask is predicted inside its
box only (CondInst predicts masks over the whole image; the crop is our choice, see
``deal_ros.instance.config.InferConfig``).

Greedy NMS: visit the boxes best score first (ties keep the input order); a box is kept when no
kept box of the same class overlaps it with IoU > ``threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["box_iou_matrix", "crop_to_box", "crop_to_boxes", "nms", "pixel_box"]


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (n, m) of boxes ``a`` (n, 4) and ``b`` (m, 4); computed in the inputs' float type."""
    a = np.asarray(a)
    b = np.asarray(b)
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, dtype.type(1e-9))


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy class-aware NMS (module docstring): kept indices (int64), best score first."""
    scores = np.asarray(scores)
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    b = np.asarray(boxes)[order]
    c = np.asarray(classes)[order]
    over = (box_iou_matrix(b, b) > threshold) & (c[:, None] == c[None, :])
    alive = np.ones(len(order), bool)
    keep = []
    for i in range(len(order)):
        if alive[i]:
            keep.append(i)
            alive &= ~over[i]
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)


def pixel_box(
    box: Sequence[float], size: tuple[int, int], margin: float = 0.0
) -> tuple[int, int, int, int]:
    """Whole-pixel left, top, right, bottom (exclusive) around a float x0, y0, x1, y1 box
    widened by ``margin`` on every side, inside an image of ``size`` (H, W); right >= left,
    bottom >= top."""
    h, w = size
    left = int(np.clip(np.floor(box[0] - margin), 0, w))
    top = int(np.clip(np.floor(box[1] - margin), 0, h))
    right = int(np.clip(np.ceil(box[2] + margin), left, w))
    bottom = int(np.clip(np.ceil(box[3] + margin), top, h))
    return left, top, right, bottom


def crop_to_box(mask, box, margin: float = 0.0):
    """``mask`` (..., H, W), numpy or torch, set to 0 (False) outside ``box`` (x0, y0, x1, y1 in
    the mask's pixels) widened by ``margin``, in place; returns ``mask``."""
    x0, y0, x1, y1 = pixel_box(box, tuple(mask.shape[-2:]), margin)
    mask[..., :y0, :] = 0
    mask[..., y1:, :] = 0
    mask[..., :, :x0] = 0
    mask[..., :, x1:] = 0
    return mask


def crop_to_boxes(
    masks: np.ndarray, boxes: np.ndarray, margin: float = 0.0, scale: float = 1.0
) -> np.ndarray:
    """:func:`crop_to_box` of each mask (n, H, W) with its box (n, 4), widened by ``margin``
    times ``scale`` pixels (a margin in network-input pixels times image pixels per input
    pixel), in place; ``margin`` < 0 crops nothing. Returns ``masks``. The torch path
    (``deal_ros.instance.evaluate.to_original``) and the runtime (``deal_ros.infer.instances``)
    both call it on the image, after the placement is undone."""
    if margin < 0:
        return masks
    for mask, box in zip(masks, boxes):
        crop_to_box(mask, box, margin * scale)
    return masks
