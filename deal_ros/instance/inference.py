"""From dense FCOS outputs to instances: candidate selection, box decoding, NMS.

Per image: locations whose class probability exceeds ``score_threshold`` (at most
``pre_nms_topk``, highest first) become candidates with score sqrt(p_cls * p_ctr) (FCOS's
test-time score); boxes (x - l, y - t, x + r, y + b) clipped to the image; class-aware NMS at
``nms_threshold`` (numpy, ``deal_ros.core.boxes``); the best ``max_detections`` are kept.
No torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deal_ros.core import boxes as boxes_np


@dataclass
class Candidates:
    """Selected locations of one image: flat location index, class (0-based), score, box."""

    index: torch.Tensor  # (n,) long, into the flattened levels
    classes: torch.Tensor  # (n,) long, 0..K-1
    scores: torch.Tensor  # (n,)
    boxes: torch.Tensor  # (n, 4) x0, y0, x1, y1


def decode_boxes(locations: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """(n,2) x, y and (n,4) l, t, r, b -> (n,4) x0, y0, x1, y1."""
    x, y = locations[:, 0], locations[:, 1]
    return torch.stack([x - reg[:, 0], y - reg[:, 1], x + reg[:, 2], y + reg[:, 3]], dim=1)


def box_iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU (n, m) of x0, y0, x1, y1 boxes (``deal_ros.core.boxes.box_iou_matrix``)."""
    iou = boxes_np.box_iou_matrix(a.detach().cpu().numpy(), b.detach().cpu().numpy())
    return torch.from_numpy(iou).to(device=a.device, dtype=a.dtype)


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Greedy class-aware NMS; returns the kept indices, best score first (the numpy
    ``deal_ros.core.boxes.nms``: one implementation for torch decoding and the ONNX runtime)."""
    keep = boxes_np.nms(
        boxes.detach().cpu().numpy(),
        scores.detach().cpu().numpy(),
        classes.detach().cpu().numpy(),
        threshold,
    )
    return torch.from_numpy(keep).to(boxes.device)


def select(
    logits: torch.Tensor,
    ctr: torch.Tensor,
    reg: torch.Tensor,
    locations: torch.Tensor,
    image_size: tuple[int, int],
    score_threshold: float = 0.05,
    topk: int = 1000,
) -> Candidates:
    """Candidates of one image from (L,K) logits, (L,) centerness logits, (L,4) distances."""
    prob = torch.sigmoid(logits)
    loc, cls = torch.nonzero(prob > score_threshold, as_tuple=True)
    score = torch.sqrt(prob[loc, cls] * torch.sigmoid(ctr[loc]))
    if score.numel() > topk:
        score, order = score.topk(topk)
        loc, cls = loc[order], cls[order]
    return select_at(loc, cls, score, reg, locations, image_size)


def top_candidates(
    logits: torch.Tensor,
    ctr: torch.Tensor,
    reg: torch.Tensor,
    locations: torch.Tensor,
    image_size: tuple[int, int],
    k: int,
) -> Candidates:
    """The ``k`` best (location, class) pairs by sqrt(p_cls p_ctr), no threshold, no NMS (the
    dense teacher predictions that self-distillation matches to boxes)."""
    prob = torch.sigmoid(logits)
    best, cls = prob.max(1)
    score = torch.sqrt(best * torch.sigmoid(ctr))
    score, loc = score.topk(min(k, score.numel()))
    return select_at(loc, cls[loc], score, reg, locations, image_size)


def select_at(
    loc: torch.Tensor,
    cls: torch.Tensor,
    score: torch.Tensor,
    reg: torch.Tensor,
    locations: torch.Tensor,
    image_size: tuple[int, int],
) -> Candidates:
    """Candidates at given locations, boxes decoded and clipped to the image."""
    boxes = decode_boxes(locations[loc], reg[loc])
    h, w = image_size
    lim = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
    boxes = torch.minimum(boxes.clamp_min(0), lim)
    return Candidates(loc, cls, score, boxes)
