"""The loss of box-supervised instance segmentation with pseudo depth (glue; the terms live in
``deal_ros.losses``):

    L = w_cls L_focal + w_box L_giou + w_ctr L_ctr                       (FCOS, box labels)
      + w_proj L_proj + ramp(step) w_pair L_pair                         (BoxInst)
      + w_bce L_proj_bce                          (ours: a projection that never saturates)
      + w_out L_out                      (ours: background outside the box, boxinst.py)
      + ramp(step - depth_consistency_start) w_cons L_cons              (Eq. 4)
      + w_cons w_surf (L_surf + w_bg L_out)   (ours: the mask against the depth of the box's
                                           surround inside it, background outside it)
      + w_depth L_depth                                                  (Eq. 2, DG-MaskHead)
      + gamma L_m_dice                                                   (Eq. 10, distillation)

L_depth = sum B (P_depth - P_true)^2 / sum B over the box pixels B with valid depth (the paper
writes the un-normalised sum; the mean is our choice, so its weight does not scale with box
size). ramp(t) = min(max(t, 0) / pairwise_warmup, 1) (BoxInst's warm-up of the pairwise term).
Ramping L_cons too, and optionally later (``depth_consistency_start``), is our choice: the
paper is silent, and on our scenes a consistency term at full weight before the masks have
formed drives them to the trivial all-background solution (pairwise and consistency terms
reach 0, the projection term stalls); see bench/bench_instance.py. The mask terms are
computed on ``max_instances`` positive locations sampled at random (CondInst samples too).
``projection_inside`` (ours) projects each mask inside its box only for L_proj; with L_out it
ends the L-shaped masks of issue 17 (``deal_ros.losses.boxinst``; off in the box preset, see
bench/README.md).
L_surf is a depth-consistency term too: it is weighted by ``depth_consistency_weight`` times
``surround_weight``, so ``loss.depth_consistency_weight=0`` turns every depth term of the mask
loss off (the BoxInst baseline), and it is not ramped (our choices: it has no trivial solution
to fall into before the masks have formed). ``surround_background`` (w_bg) adds the background
outside the box (``outside_box_loss``, mean over the outside pixels) as L_surf's other half:
L_surf alone leaves a mask free to saturate to 1 everywhere (projection and L_pair then stay
stuck; seed 2 of bench/README.md scored 25.5 mask AP against the baseline's 47.0), and L_out
alone drives masks to background (its own note); together they are a unary target for every
pixel (our choice).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deal_ros.instance.config import BoxLossConfig
from deal_ros.instance.targets import Targets
from deal_ros.losses import reliable_dice_loss
from deal_ros.losses.boxinst import boxinst_terms, outside_box_loss
from deal_ros.losses.fcos import centerness_loss, giou_loss, sigmoid_focal_loss
from deal_ros.losses.surround_depth import surround_loss


@dataclass
class Sampled:
    """The positive locations whose masks are trained this step."""

    image: torch.Tensor  # (N,) image index
    loc: torch.Tensor  # (N,) flat location index
    gt: torch.Tensor  # (N,) index into Targets.gt_boxes


def detection_losses(dense, targets: Targets, cfg: BoxLossConfig) -> dict[str, torch.Tensor]:
    """FCOS: focal (sum / #positives), GIoU (centerness-weighted), centerness BCE."""
    pos = targets.positive
    num_pos = max(int(pos.sum()), 1)
    onehot = torch.zeros_like(dense.logits)
    b, l_ = torch.nonzero(pos, as_tuple=True)
    onehot[b, l_, targets.labels[pos]] = 1.0
    cls = sigmoid_focal_loss(dense.logits, onehot, cfg.focal_alpha, cfg.focal_gamma) / num_pos
    ctr_t = targets.centerness()
    box = giou_loss(dense.reg[pos], targets.reg[pos], weight=ctr_t)
    ctr = centerness_loss(dense.ctr[pos], ctr_t)
    return {"cls": cls, "box": box, "ctr": ctr}


def sample_positives(
    targets: Targets, max_instances: int, generator: torch.Generator | None = None
) -> Sampled:
    """At most ``max_instances`` positive locations, uniformly at random."""
    b, loc = torch.nonzero(targets.positive, as_tuple=True)
    if b.numel() > max_instances:
        keep = torch.randperm(b.numel(), generator=generator)[:max_instances].to(b.device)
        b, loc = b[keep], loc[keep]
    return Sampled(b, loc, targets.gt_index[b, loc])


def depth_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum w (P_depth - P_true)^2 / sum w (Eq. 2, weighted mean)."""
    w = weight.to(pred.dtype)
    return (w * (pred - target.to(pred.dtype)).pow(2)).sum() / w.sum().clamp_min(1.0)


def mask_losses(
    mask_logits: torch.Tensor,
    depth_pred: torch.Tensor | None,
    boxes: torch.Tensor,
    lab: torch.Tensor,
    depth: torch.Tensor | None,
    depth_target: tuple[torch.Tensor, torch.Tensor] | None,
    step: int,
    cfg: BoxLossConfig,
    surround: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """BoxInst + depth terms for N instance masks (N,1,h,w) against their box masks (N,1,h,w),
    L*a*b* (N,3,h,w), normalised depth (N,1,h,w), the depth target (target, valid) and the
    surround prior (prior, weight), each (N,1,h,w)."""
    zero = mask_logits.sum() * 0.0
    terms = boxinst_terms(
        mask_logits,
        boxes,
        lab,
        step,
        depth if cfg.depth_consistency_weight > 0 else None,
        projection_weight=cfg.projection_weight,
        pairwise_weight=cfg.pairwise_weight,
        color_threshold=cfg.color_threshold,
        warmup_iters=cfg.pairwise_warmup,
        depth_weight=cfg.depth_consistency_weight,
        depth_tau=cfg.depth_tau,
        depth_scale=cfg.depth_scale,
        slope_scale=cfg.depth_slope_scale,
        depth_start=cfg.depth_consistency_start,
        depth_gate=cfg.depth_gate,
        projection_bce_weight=cfg.projection_bce_weight,
        pairwise_outside=cfg.pairwise_outside,
        outside_weight=cfg.outside_weight,
        outside_norm=cfg.outside_norm,
        projection_inside=cfg.projection_inside,
        inside_projection_weight=cfg.inside_projection_weight,
        depth_pairs=cfg.depth_pairs,
    )
    proj, pair, cons = terms["projection"], terms["pairwise"], terms["depth_consistency"]
    dloss = zero
    if depth_pred is not None and depth_target is not None and cfg.depth_weight > 0:
        target, valid = depth_target
        dloss = depth_loss(depth_pred, target, boxes * valid.to(boxes.dtype))
    total = terms["loss"] + cfg.depth_weight * dloss
    surf = zero
    if surround is not None and cfg.surround_on:
        surf = surround_loss(mask_logits, *surround)
        if cfg.surround_background > 0:
            surf = surf + cfg.surround_background * outside_box_loss(mask_logits, boxes, "outside")
        total = total + cfg.depth_consistency_weight * cfg.surround_weight * surf
    return {
        "proj": proj,
        "proj_bce": terms["projection_bce"],
        "out": terms["outside"],
        "pair": pair,
        "cons": cons,
        "depth": dloss,
        "surf": surf,
        "mask_total": total,
    }


def distill_loss(
    mask_logits: torch.Tensor, pseudo: torch.Tensor, scores: torch.Tensor, tau: float, weight: float
) -> torch.Tensor:
    """gamma * reliable dice (Eq. 10) of the student masks against matched teacher masks."""
    return reliable_dice_loss(torch.sigmoid(mask_logits)[:, 0], pseudo, scores, tau, weight)
