"""Self-distillation with depth-aware pseudo masks (Yu, Yan et al., Sec. 3.3).

For each training image the EMA teacher sees the image enlarged by ``teacher_scale`` (the paper:
800 px vs the student's 640-800). Its ``candidates`` best dense predictions (location, class,
box, mask; no NMS: "mask predictions from adjacent points are often similar") are matched
one-to-one to the ground-truth boxes by the Hungarian algorithm on

    S_match = alpha IoU(B_gt, B_pred) + beta S_d_cons(P_mask) + (1 - alpha - beta) S_pred

(``deal_ros.losses.depth_aware_match``; ``match="iou"`` uses alpha = 1, beta = 0: the
ablation's "matching by IoU"). The matched teacher mask, binarised at ``mask_threshold``
(``pseudo="binary"``; the paper does not say whether pseudo masks are soft) or kept as
probabilities (``pseudo="soft"``, ours), is the pseudo mask of the box; its S_match is the
box's reliability, compared with tau_m in the reliable dice loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deal_ros.instance.condinst import CondInst
from deal_ros.instance.config import DistillConfig
from deal_ros.instance.inference import top_candidates
from deal_ros.losses import depth_aware_match


def match_pseudo(
    gt_boxes: torch.Tensor,
    masks: torch.Tensor,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    depth: torch.Tensor,
    cfg: DistillConfig,
    depth_tau: float = 0.5,
    depth_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Match candidate masks (P,h,w) in [0,1] (boxes (P,4), scores (P,)) to ``gt_boxes`` (G,4)
    on S_match over ``depth`` (h,w): (pseudo masks (G,h,w), in {0,1} or with
    ``cfg.pseudo == "soft"`` in [0,1], S_match (G,)); boxes
    left without a candidate get an empty mask and score 0."""
    g = gt_boxes.shape[0]
    pseudo = masks.new_zeros((g, *masks.shape[1:]))
    score = masks.new_zeros((g,))
    if g == 0 or masks.shape[0] == 0:
        return pseudo, score
    alpha, beta = (cfg.alpha, cfg.beta) if cfg.match == "depth" else (1.0, 0.0)
    res = depth_aware_match(
        gt_boxes.detach().cpu(),
        masks.detach().cpu(),
        depth.detach().cpu(),
        scores.detach().cpu(),
        boxes.detach().cpu(),
        alpha=alpha,
        beta=beta,
        tau=depth_tau,
        depth_scale=depth_scale,
    )
    gi = torch.as_tensor(res.gt_index, device=masks.device)
    pi = torch.as_tensor(res.pred_index, device=masks.device)
    matched = masks[pi]
    if cfg.pseudo != "soft":
        matched = (matched > cfg.mask_threshold).to(pseudo.dtype)
    pseudo[gi] = matched
    score[gi] = torch.as_tensor(res.score, dtype=score.dtype, device=masks.device)
    return pseudo, score


@torch.no_grad()
def pseudo_masks(
    teacher: CondInst,
    images: torch.Tensor,
    gt_boxes: list[torch.Tensor],
    depth: torch.Tensor,
    mask_hw: tuple[int, int],
    cfg: DistillConfig,
    depth_tau: float = 0.5,
    depth_scale: float = 1.0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image: (pseudo masks (G,h,w) in {0,1}, matching scores (G,)) from the teacher's
    ``candidates`` best predictions on the enlarged image (``match_pseudo``). ``gt_boxes[b]``
    (G,4) input pixels; ``depth`` (B,1,h,w) normalised depth at the mask resolution."""
    teacher.eval()
    s = cfg.teacher_scale
    big = (
        images
        if s == 1
        else F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=False)
    )
    dense = teacher(big)
    out = []
    for b, boxes in enumerate(gt_boxes):
        if boxes.shape[0] == 0:
            out.append((images.new_zeros((0, *mask_hw)), images.new_zeros((0,))))
            continue
        c = top_candidates(
            dense.logits[b],
            dense.ctr[b],
            dense.reg[b],
            dense.locations,
            dense.image_size,
            cfg.candidates,
        )
        logits, _ = teacher.masks(dense, c.index, torch.full_like(c.index, b))
        probs = F.interpolate(
            torch.sigmoid(logits), size=mask_hw, mode="bilinear", align_corners=False
        )[:, 0]
        out.append(
            match_pseudo(
                boxes, probs, c.boxes / s, c.scores, depth[b, 0], cfg, depth_tau, depth_scale
            )
        )
    return out
