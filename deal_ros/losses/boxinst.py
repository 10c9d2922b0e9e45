"""BoxInst losses (Tian et al., CVPR 2021) for box-supervised instance masks.

Projection loss, mask probabilities m (N,H,W) and box masks b (1 inside the box):

    L_proj = Dice(max_y m, max_y b) + Dice(max_x m, max_x b)         (mean over instances)

Pairwise colour-affinity loss over the 8 neighbours j of each pixel i (3x3 kernel, dilation 2),
with the LAB colour similarity S_ij = exp(-||Lab_i - Lab_j||_2 / 2):

    P(y_ij = 1) = m_i m_j + (1 - m_i)(1 - m_j)
    L_pair      = -(1 / sum w) sum_ij w_ij log P(y_ij = 1),   w_ij = 1[S_ij >= 0.3] b_i

computed from logits in log space (log-sum-exp of the two "same" events), then multiplied
by a linear warm-up min(step / 10000, 1). The pairwise machinery (pairwise.py) also serves
the depth consistency loss (depth_consistency.py).

Options of ours, off by default (off = BoxInst as published): ``projection_inside`` (the
projection of the mask inside its box only) with ``outside_box_loss`` (L_out, background BCE
outside the box): the box constraint split in its two parts, which ends the L-shaped masks
of issue 17 on our check (off in the box preset too; bench/README.md);
``projection_bce_loss``, a BCE on the projected logits that still pulls a saturated mask;
the depth gate (``depth_step_gate`` in depth_consistency.py), which leaves colour pairs
across a depth step out of L_pair; and
``pairwise_outside``, which counts the pairs outside the box too (w_ij = 1[S_ij >= 0.3]; see
``pairwise_color_loss``);
``inside_projection_weight``, BoxInst's whole-mask projection plus the in-box one; and
``depth_pairs="beyond_colour"`` (on in the box preset), which joins in L_cons only the
depth-consistent pairs L_pair does not count, normalised over the pairs either term counts:

    L_cons' = -(1 / (sum w + sum v)) sum_ij v_ij log P(y_ij = 1),
    v_ij = 1[S_d,ij > tau_d] (1 - 1[S_ij >= 0.3]) b_i                (w_ij: L_pair's weights)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import as_instance_maps, check_ndim
from .depth_consistency import depth_consistency_loss, depth_step_gate
from .dice import dice_loss
from .lab import rgb_to_lab
from .neighbours import inside, neighbours
from .pairwise import log_same_prob, pairwise_affinity_loss

# log_same_prob and pairwise_affinity_loss (pairwise.py) were defined here first; both names
# stay importable from this module.
__all__ = [
    "BoxInstLoss",
    "boxinst_terms",
    "color_similarity",
    "colour_pair_weights",
    "linear_warmup",
    "log_same_prob",
    "outside_box_loss",
    "pairwise_affinity_loss",
    "pairwise_color_loss",
    "projection_bce_loss",
    "projection_loss",
]


def linear_warmup(step: int | float, warmup_iters: int = 10000) -> float:
    """min(step / warmup_iters, 1): BoxInst's warm-up factor of the pairwise term."""
    if warmup_iters <= 0:
        return 1.0
    return float(min(max(step, 0) / warmup_iters, 1.0))


def projection_loss(
    mask_probs: torch.Tensor, box_masks: torch.Tensor, inside: bool = False
) -> torch.Tensor:
    """Dice between the x and y max-projections of masks and boxes, mean over instances.

    inside: project the mask inside the box only, m * b (ours; False = BoxInst, the whole
    mask). BoxInst's projection credits any pixel of a box column, inside the box or not, so
    a line just outside a tight box (the "L" of issue 17) meets it; projected inside the box,
    each box row and column needs an object pixel of its own, and what lies outside is left
    to ``outside_box_loss`` (the two together are the box constraint, split in its parts)."""
    m = as_instance_maps("mask_probs", mask_probs)
    b = as_instance_maps("box_masks", box_masks).to(m.dtype)
    if m.shape != b.shape:
        raise ValueError(f"mask_probs and box_masks: shapes differ, {m.shape} vs {b.shape}")
    if inside:
        m = m * b
    loss_x = dice_loss(m.amax(2), b.amax(2), reduction="none")  # projection onto the x axis
    loss_y = dice_loss(m.amax(3), b.amax(3), reduction="none")
    return (loss_x + loss_y).mean() if m.shape[0] else m.sum() * 0.0


def projection_bce_loss(mask_logits: torch.Tensor, box_masks: torch.Tensor) -> torch.Tensor:
    """BCE between the x and y max-projections of the mask LOGITS and those of the boxes:

        L_proj_bce = mean_n [ BCE(max_y x_n, max_y b_n) + BCE(max_x x_n, max_x b_n) ]

    (BCE with logits, averaged along each projection). Our addition, not BoxInst's: Dice on
    sigmoid probabilities stops pulling once a mask saturates (its gradient carries
    sigmoid'(x), ~e^-40 at a logit of -40), and short runs (150 steps, a few thousand at
    most) drive the dynamic head's logits there within tens of steps: masks empty inside their
    boxes for good. The BCE gradient on a projected logit is sigmoid(x) - b: 1 for a box
    column whose mask is saturated off, so the projection always pulls."""
    x = as_instance_maps("mask_logits", mask_logits)
    b = as_instance_maps("box_masks", box_masks).to(x.dtype)
    if x.shape != b.shape:
        raise ValueError(f"mask_logits and box_masks: shapes differ, {x.shape} vs {b.shape}")
    if x.shape[0] == 0:
        return x.sum() * 0.0
    bce = F.binary_cross_entropy_with_logits
    on_x = bce(x.amax(2), b.amax(2), reduction="none").mean((1, 2))
    on_y = bce(x.amax(3), b.amax(3), reduction="none").mean((1, 2))
    return (on_x + on_y).mean()


def outside_box_loss(
    mask_logits: torch.Tensor, box_masks: torch.Tensor, norm: str = "outside"
) -> torch.Tensor:
    """Background outside the box, the box's hard constraint made explicit (ours, not BoxInst's):

        L_out = mean_n [ sum_{i outside box_n} softplus(x_ni) / Z_n ]

    softplus(x) = -log(1 - sigmoid(x)) is the BCE of a pixel against background; Z_n =
    |outside box_n| (``norm="outside"``: a plain mean over the pixels known to be background)
    or |box_n| (``norm="box"``, the box's area in mask cells). Its gradient sigmoid(x) / Z does
    not vanish as a wrong pixel's logit saturates. BoxInst implies background outside the box
    only through its max-projections, which leave a thin "L" on the rim of a tight box (or a
    line along the image border) nearly free; with ``projection_loss(inside=True)`` the line
    earns no projection credit at all, and this term removes it. At the answer (the object
    inside its box) the term is 0.
    Measured (issue 17 form check, bench/README.md): "outside" with the in-box projection
    forms the masks (mask AP 0.78 / 0.87 / 0.77, seeds 0-2); "box" with BoxInst's projection
    weighs the outside |outside| / |box| times (~30x at init) and drives every mask to
    background in the first tens of steps (mask AP 0.0, projection loss 2.0)."""
    x = as_instance_maps("mask_logits", mask_logits)
    b = as_instance_maps("box_masks", box_masks).to(x.dtype)
    if x.shape != b.shape:
        raise ValueError(f"mask_logits and box_masks: shapes differ, {x.shape} vs {b.shape}")
    if norm not in ("box", "outside"):
        raise ValueError(f"outside_box_loss: norm must be 'box' or 'outside', got {norm!r}")
    if x.shape[0] == 0:
        return x.sum() * 0.0
    out = 1.0 - b
    cost = (F.softplus(x) * out).sum((1, 2, 3))
    z = (b if norm == "box" else out).sum((1, 2, 3)).clamp_min(1.0)
    return (cost / z).mean()


def color_similarity(lab: torch.Tensor, kernel_size: int = 3, dilation: int = 2) -> torch.Tensor:
    """S_ij = exp(-||Lab_i - Lab_j|| / 2) for the neighbours, (B,K*K-1,H,W); 0 outside."""
    check_ndim("lab", lab, 4, "(B,3,H,W)")
    diff = lab.unsqueeze(2) - neighbours(lab, kernel_size, dilation)
    sim = torch.exp(-diff.pow(2).sum(1).sqrt() * 0.5)
    return sim * inside(*lab.shape[-2:], kernel_size, dilation, lab.device)[0].to(sim.dtype)


def pairwise_color_loss(
    mask_logits: torch.Tensor,
    lab: torch.Tensor,
    box_masks: torch.Tensor,
    threshold: float = 0.3,
    kernel_size: int = 3,
    dilation: int = 2,
    gate: torch.Tensor | None = None,
    outside: bool = False,
) -> torch.Tensor:
    """BoxInst's pairwise term: pairs with colour similarity >= ``threshold``, centre in box.

    lab: (N,3,H,W) or (1,3,H,W) L*a*b* image(s) at mask resolution (see ``rgb_to_lab``).
    gate: optional (N or 1,K*K-1,H,W) bool, the pairs allowed at all (``depth_step_gate``:
    colour pairs across a depth step left out; our addition, None = BoxInst).
    outside: count the similar pairs of the whole image, centres outside the box too,
    w_ij = 1[S_ij >= tau] (our addition; False = BoxInst's w_ij = 1[S_ij >= tau] b_i).
    Why: with centres in the box only, mask pixels on the outer rim of a tight box are bound
    by no pair (their in-box partners differ in colour, their outside partners are not
    counted), so a thin "L" just outside the box (a row above it, a column beside it) meets
    both max-projections at the price of one extra row and column of Dice, while L_pair
    drives the uniform interior to background, where no term has a gradient left (the max
    passes it to the rim only). Short CPU runs settle there: boxes right, masks of IoU 0.
    Outside the box the mask is background, so the extra pairs cost nothing at the answer.
    """
    weights = colour_pair_weights(lab, box_masks, threshold, kernel_size, dilation, gate, outside)
    return pairwise_affinity_loss(mask_logits, weights, kernel_size, dilation)


def colour_pair_weights(
    lab: torch.Tensor,
    box_masks: torch.Tensor,
    threshold: float = 0.3,
    kernel_size: int = 3,
    dilation: int = 2,
    gate: torch.Tensor | None = None,
    outside: bool = False,
) -> torch.Tensor:
    """The weights w_ij of ``pairwise_color_loss`` (its arguments), (N,K*K-1,H,W)."""
    sim = color_similarity(lab, kernel_size, dilation)
    b = as_instance_maps("box_masks", box_masks).to(sim.dtype)
    weights = (sim >= threshold).to(sim.dtype) * (torch.ones_like(b) if outside else b)
    if gate is not None:
        weights = weights * gate.to(weights.dtype)
    return weights


def boxinst_terms(
    mask_logits: torch.Tensor,
    box_masks: torch.Tensor,
    lab: torch.Tensor,
    step: int = 0,
    depth: torch.Tensor | None = None,
    *,
    projection_weight: float = 1.0,
    pairwise_weight: float = 1.0,
    color_threshold: float = 0.3,
    warmup_iters: int = 10000,
    depth_weight: float = 1.0,
    depth_tau: float = 0.5,
    depth_scale: float = 1.0,
    slope_scale: float = 0.0,
    depth_start: int = 0,
    depth_gate: bool = False,
    projection_bce_weight: float = 0.0,
    pairwise_outside: bool = False,
    outside_weight: float = 0.0,
    outside_norm: str = "outside",
    projection_inside: bool = False,
    inside_projection_weight: float = 0.0,
    depth_pairs: str = "all",
    kernel_size: int = 3,
    dilation: int = 2,
) -> dict[str, torch.Tensor]:
    """The mask terms of box supervision on L*a*b* ``lab`` (N or 1,3,H,W):

        L = w_proj L_proj + w_bce L_proj_bce + w_out L_out + ramp(step) w_pair L_pair
            + ramp(step - depth_start) w_depth L_cons

    with ramp(t) = min(max(t, 0) / warmup_iters, 1). L_cons (depth_consistency.py) is added
    when ``depth`` (N or 1,1,H,W) is given and ``depth_weight`` > 0. Ramping L_cons like
    L_pair, optionally from a later step, is our choice (the paper is silent): at full weight
    before the masks have formed it drives them to a uniform minimum (every mask all background,
    or all object), where the pairwise and consistency terms vanish and the projection term's
    gradient dies in the saturated sigmoid. ``depth_gate`` (with ``depth`` and ``depth_weight``
    > 0; our addition, False = the paper) leaves the colour pairs across a depth step
    (S_d <= ``depth_tau``) out of L_pair (``depth_step_gate``). ``pairwise_outside`` (ours;
    False = the papers) counts the pairs outside the box too, in L_pair and L_cons (see
    ``pairwise_color_loss``). ``projection_inside`` (ours) projects the mask inside its box
    only (``projection_loss``); ``inside_projection_weight`` > 0 (ours) keeps BoxInst's
    projection of the whole mask and adds that of the mask inside the box, with this weight:
    the whole-mask one charges mass beside the box, the in-box one a box row or column left
    empty (the "L" of issue 17: a line just outside the box meets the first alone, and with
    the depth gate no colour pair across the object's outline binds it);
    ``depth_pairs="beyond_colour"`` (ours; "all" = the paper) joins in L_cons only the
    depth-consistent pairs that L_pair does not count (colours apart), normalised by the
    pairs either term counts: where colour already joins a pair (camouflage: nearly every
    pair), the paper's L_cons counts it a second time, doubling the pull to a uniform mask.
    ``outside_weight`` > 0 (ours) adds L_out
    (``outside_box_loss`` with ``outside_norm``). Returns "projection",
    "projection_bce" (``projection_bce_loss``, 0 unless ``projection_bce_weight`` > 0),
    "outside" (0 unless ``outside_weight`` > 0),
    "pairwise", "depth_consistency" and "loss".
    """
    use_depth = depth is not None and depth_weight > 0
    gate = None
    if use_depth and depth_gate:
        gate = depth_step_gate(depth, depth_tau, depth_scale, kernel_size, dilation)
    probs = torch.sigmoid(mask_logits)
    proj = projection_loss(probs, box_masks, projection_inside)
    if inside_projection_weight > 0:
        proj = proj + inside_projection_weight * projection_loss(probs, box_masks, inside=True)
    colour = colour_pair_weights(
        lab, box_masks, color_threshold, kernel_size, dilation, gate, pairwise_outside
    )
    pair = pairwise_affinity_loss(mask_logits, colour, kernel_size, dilation)
    total = projection_weight * proj + linear_warmup(step, warmup_iters) * pairwise_weight * pair
    proj_bce = mask_logits.sum() * 0.0
    if projection_bce_weight > 0:
        proj_bce = projection_bce_loss(mask_logits, box_masks)
        total = total + projection_bce_weight * proj_bce
    out = mask_logits.sum() * 0.0
    if outside_weight > 0:
        out = outside_box_loss(mask_logits, box_masks, outside_norm)
        total = total + outside_weight * out
    cons = mask_logits.sum() * 0.0
    if use_depth:
        exclude, counted = None, 0.0
        if depth_pairs == "beyond_colour":  # L_cons and L_pair share one normaliser
            exclude, counted = colour > 0, colour.sum()
        elif depth_pairs != "all":
            raise ValueError(f"depth_pairs: expected all or beyond_colour, got {depth_pairs!r}")
        cons = depth_consistency_loss(
            mask_logits,
            depth,
            box_masks,
            depth_tau,
            depth_scale,
            kernel_size,
            dilation,
            slope_scale=slope_scale,
            outside=pairwise_outside,
            exclude=exclude,
            extra_count=counted,
        )
        total = total + linear_warmup(step - depth_start, warmup_iters) * depth_weight * cons
    return {
        "projection": proj,
        "projection_bce": proj_bce,
        "outside": out,
        "pairwise": pair,
        "depth_consistency": cons,
        "loss": total,
    }


class BoxInstLoss(nn.Module):
    """``boxinst_terms`` as a module: ``forward(mask_logits (N,1,H,W), box_masks (N,1,H,W),
    rgb (N or 1,3,H,W) in [0,1], step=0, depth=None)`` -> dict with "projection",
    "pairwise", "depth_consistency" and "loss" (the RGB goes to L*a*b* here)."""

    def __init__(
        self,
        pairwise_weight: float = 1.0,
        color_threshold: float = 0.3,
        warmup_iters: int = 10000,
        projection_weight: float = 1.0,
        kernel_size: int = 3,
        dilation: int = 2,
        depth_weight: float = 1.0,
        depth_tau: float = 0.5,
        depth_scale: float = 1.0,
        slope_scale: float = 0.0,
        depth_start: int = 0,
        depth_gate: bool = False,
        projection_bce_weight: float = 0.0,
        pairwise_outside: bool = False,
        outside_weight: float = 0.0,
        outside_norm: str = "outside",
        projection_inside: bool = False,
        inside_projection_weight: float = 0.0,
        depth_pairs: str = "all",
    ) -> None:
        super().__init__()
        self.options = {
            "projection_weight": float(projection_weight),
            "pairwise_weight": float(pairwise_weight),
            "color_threshold": float(color_threshold),
            "warmup_iters": int(warmup_iters),
            "kernel_size": kernel_size,
            "dilation": dilation,
            "depth_weight": float(depth_weight),
            "depth_tau": float(depth_tau),
            "depth_scale": float(depth_scale),
            "slope_scale": float(slope_scale),
            "depth_start": int(depth_start),
            "depth_gate": bool(depth_gate),
            "projection_bce_weight": float(projection_bce_weight),
            "pairwise_outside": bool(pairwise_outside),
            "outside_weight": float(outside_weight),
            "outside_norm": str(outside_norm),
            "projection_inside": bool(projection_inside),
            "inside_projection_weight": float(inside_projection_weight),
            "depth_pairs": str(depth_pairs),
        }

    def forward(self, mask_logits, box_masks, rgb, step: int = 0, depth=None) -> dict:
        return boxinst_terms(mask_logits, box_masks, rgb_to_lab(rgb), step, depth, **self.options)
