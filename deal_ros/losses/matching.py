"""Depth-aware matching of teacher masks to ground-truth boxes (Yu, Yan et al., Eq. 7-9).

    S_match(g, p) = alpha IoU(B_g, B_p) + beta S_d_cons(P_p) + (1 - alpha - beta) S_pred(p)

alpha = 0.8, beta = 0.2 (the paper's values, so the prediction score has weight 0 by
default). IoU is the box IoU between the ground-truth box and the predicted mask's box (the
predicted box when given, else the tight box of mask > 0.5); S_d_cons is the mask's depth
consistency score (depth_consistency.py). The Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``, maximising S) assigns at most one mask per box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .depth_consistency import depth_consistency_score


@dataclass(frozen=True)
class MatchResult:
    """Matched pairs: gt_index[i] <-> pred_index[i] with matching score score[i]."""

    gt_index: np.ndarray
    pred_index: np.ndarray
    score: np.ndarray
    matrix: np.ndarray  # the full (G, P) S_match


def _check_boxes(name: str, boxes: torch.Tensor) -> torch.Tensor:
    boxes = torch.as_tensor(boxes).detach().cpu().to(torch.float64)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name}: expected (N,4) boxes x1,y1,x2,y2, got {tuple(boxes.shape)}")
    return boxes


def _area(t: torch.Tensor) -> torch.Tensor:
    return (t[:, 2] - t[:, 0]).clamp_min(0) * (t[:, 3] - t[:, 1]).clamp_min(0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU matrix (N,M) of boxes a (N,4) and b (M,4) in x1,y1,x2,y2 (x2, y2 exclusive)."""
    a, b = _check_boxes("boxes a", a), _check_boxes("boxes b", b)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return inter / union.clamp_min(1e-12)


def masks_to_boxes(masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Tight boxes (N,4) x1,y1,x2,y2 (exclusive) of masks (N,H,W) > threshold; empty -> 0s."""
    m = masks > threshold
    n = m.shape[0]
    out = torch.zeros(n, 4, dtype=torch.float64)
    rows, cols = m.any(2), m.any(1)  # (N,H), (N,W)
    for i in range(n):
        ys, xs = torch.nonzero(rows[i]).flatten(), torch.nonzero(cols[i]).flatten()
        if len(ys):
            out[i] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float64)
    return out


def matching_scores(
    gt_boxes: torch.Tensor,
    pred_boxes: torch.Tensor,
    depth_scores: torch.Tensor,
    pred_scores: torch.Tensor,
    alpha: float = 0.8,
    beta: float = 0.2,
) -> torch.Tensor:
    """S_match (G,P) from boxes, per-mask depth consistency scores (P,) and scores (P,)."""
    if alpha < 0 or beta < 0 or alpha + beta > 1:
        raise ValueError(f"alpha, beta: expected >= 0 with alpha + beta <= 1, got {alpha}, {beta}")
    iou = box_iou(gt_boxes, pred_boxes)
    sd = torch.as_tensor(depth_scores).detach().cpu().to(torch.float64).flatten()
    sp = torch.as_tensor(pred_scores).detach().cpu().to(torch.float64).flatten()
    if sd.numel() != iou.shape[1] or sp.numel() != iou.shape[1]:
        raise ValueError(
            f"depth_scores/pred_scores: expected {iou.shape[1]} values (one per predicted mask), "
            f"got {sd.numel()} and {sp.numel()}"
        )
    return alpha * iou + beta * sd[None, :] + (1.0 - alpha - beta) * sp[None, :]


def hungarian_match(scores: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-score one-to-one assignment of rows (boxes) to columns (masks)."""
    from scipy.optimize import linear_sum_assignment  # lazy: scipy.optimize takes ~1 s to import

    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores)
    if s.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, cols = linear_sum_assignment(s, maximize=True)
    return rows.astype(np.int64), cols.astype(np.int64)


def depth_aware_match(
    gt_boxes: torch.Tensor,
    pred_masks: torch.Tensor,
    depth: torch.Tensor,
    pred_scores: torch.Tensor | None = None,
    pred_boxes: torch.Tensor | None = None,
    *,
    alpha: float = 0.8,
    beta: float = 0.2,
    tau: float = 0.5,
    depth_scale: float = 1.0,
    kernel_size: int = 3,
    dilation: int = 2,
) -> MatchResult:
    """Match teacher masks (P,H,W) to boxes (G,4) on S_match with the Hungarian algorithm.

    depth: (H,W) pseudo/metric depth of the image. pred_scores: (P,) or None (then 0).
    """
    with torch.no_grad():
        masks = pred_masks.detach()
        if masks.dim() != 3:
            raise ValueError(f"pred_masks: expected (P,H,W), got {tuple(masks.shape)}")
        boxes = masks_to_boxes(masks) if pred_boxes is None else pred_boxes
        sd = depth_consistency_score(
            masks.double(),
            depth.detach().double(),
            tau=tau,
            depth_scale=depth_scale,
            kernel_size=kernel_size,
            dilation=dilation,
        )
        sp = torch.zeros(masks.shape[0]) if pred_scores is None else pred_scores.detach().cpu()
        s = matching_scores(gt_boxes, boxes, sd.cpu(), sp, alpha, beta)
    rows, cols = hungarian_match(s)
    sn = s.numpy()
    return MatchResult(rows, cols, sn[rows, cols], sn)
