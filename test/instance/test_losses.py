"""Box-supervised instance losses against float64 references written from their formulas:
FCOS focal / GIoU / centerness, the DG-MaskHead depth loss (Eq. 2), the loss glue (weights and
warm-up) and the depth-aware pseudo-mask matching of self-distillation (the paper's figure 2)."""

from __future__ import annotations

import math

import pytest
import torch

from deal_ros.errors import DealError
from deal_ros.instance.config import BoxLossConfig, DistillConfig, load_box_config, loss_in_steps
from deal_ros.instance.distill import match_pseudo
from deal_ros.instance.losses import depth_loss, distill_loss, mask_losses
from deal_ros.losses import (
    depth_consistency_loss,
    linear_warmup,
    pairwise_color_loss,
    projection_loss,
)
from deal_ros.losses.fcos import (
    centerness_loss,
    centerness_target,
    giou_loss,
    sigmoid_focal_loss,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_sigmoid_focal_loss_matches_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, generator=g, dtype=torch.float64) * 3
    t = torch.zeros(5, 3, dtype=torch.float64)
    t[0, 1] = t[2, 0] = t[4, 2] = 1.0
    for alpha, gamma in [(0.25, 2.0), (0.5, 0.0), (0.9, 1.5)]:
        ref = 0.0
        for z, y in zip(logits.flatten().tolist(), t.flatten().tolist()):
            p = _sig(z)
            ref += -alpha * y * (1 - p) ** gamma * math.log(p)
            ref += -(1 - alpha) * (1 - y) * p**gamma * math.log(1 - p)
        got = sigmoid_focal_loss(logits, t, alpha, gamma)
        assert got.item() == pytest.approx(ref, rel=1e-10)
    with pytest.raises(ValueError, match="shapes"):
        sigmoid_focal_loss(logits, t[:, :2])


def _giou_ref(p, g) -> float:
    """GIoU from the two boxes a location's distances describe (location at the origin)."""
    bp = (-p[0], -p[1], p[2], p[3])
    bg = (-g[0], -g[1], g[2], g[3])
    iw = max(0.0, min(bp[2], bg[2]) - max(bp[0], bg[0]))
    ih = max(0.0, min(bp[3], bg[3]) - max(bp[1], bg[1]))
    inter = iw * ih
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    union = area(bp) + area(bg) - inter
    c = (max(bp[2], bg[2]) - min(bp[0], bg[0])) * (max(bp[3], bg[3]) - min(bp[1], bg[1]))
    return inter / union - (c - union) / c


def test_giou_loss_and_centerness_match_formulas():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(6, 4, generator=g, dtype=torch.float64) * 20 + 0.5
    target = torch.rand(6, 4, generator=g, dtype=torch.float64) * 20 + 0.5
    w = torch.rand(6, generator=g, dtype=torch.float64)
    per = [1 - _giou_ref(p.tolist(), t.tolist()) for p, t in zip(pred, target)]
    ref = sum(a * b for a, b in zip(per, w.tolist())) / w.sum().item()
    assert giou_loss(pred, target, w).item() == pytest.approx(ref, rel=1e-9)
    assert giou_loss(target, target).item() == pytest.approx(0.0, abs=1e-9)
    assert giou_loss(pred[:0], target[:0]).item() == 0.0
    ctr = centerness_target(target)
    for (l_, t_, r_, b_), c in zip(target.tolist(), ctr.tolist()):
        assert c == pytest.approx(math.sqrt(min(l_, r_) / max(l_, r_) * min(t_, b_) / max(t_, b_)))
    z = torch.randn(6, generator=g, dtype=torch.float64)
    bce = [
        -(y * math.log(_sig(v)) + (1 - y) * math.log(1 - _sig(v)))
        for v, y in zip(z.tolist(), ctr.tolist())
    ]
    assert centerness_loss(z, ctr).item() == pytest.approx(sum(bce) / 6, rel=1e-10)
    with pytest.raises(ValueError, match="l,t,r,b"):
        giou_loss(pred[:, :3], target[:, :3])


def test_depth_loss_is_the_box_weighted_squared_error():
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(2, 1, 4, 5, generator=g, dtype=torch.float64)
    target = torch.rand(2, 1, 4, 5, generator=g, dtype=torch.float64)
    box = torch.zeros(2, 1, 4, 5, dtype=torch.float64)
    box[0, 0, 1:3, 1:4] = 1
    box[1, 0, 0:2, 2:5] = 1
    num = den = 0.0
    for n in range(2):
        for i in range(4):
            for j in range(5):
                b = box[n, 0, i, j].item()
                num += b * (pred[n, 0, i, j].item() - target[n, 0, i, j].item()) ** 2
                den += b
    assert depth_loss(pred, target, box).item() == pytest.approx(num / den, rel=1e-12)


def test_mask_loss_glue_weights_and_warmup():
    g = torch.Generator().manual_seed(3)
    n, h, w = 3, 8, 10
    logits = torch.randn(n, 1, h, w, generator=g, dtype=torch.float64)
    boxes = torch.zeros(n, 1, h, w, dtype=torch.float64)
    boxes[:, :, 2:6, 3:8] = 1
    lab = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64) * 50
    depth = 1.0 + torch.rand(n, 1, h, w, generator=g, dtype=torch.float64) * 0.1
    dpred = torch.rand(n, 1, h, w, generator=g, dtype=torch.float64)
    target = torch.rand(n, 1, h, w, generator=g, dtype=torch.float64)
    valid = torch.ones(n, 1, h, w, dtype=torch.bool)
    cfg = BoxLossConfig(
        projection_weight=0.7,
        pairwise_weight=1.3,
        depth_consistency_weight=0.4,
        depth_weight=2.0,
        pairwise_warmup=100,
        depth_scale=0.05,
    )
    out = mask_losses(logits, dpred, boxes, lab, depth, (target, valid), 25, cfg)
    proj = projection_loss(torch.sigmoid(logits), boxes)
    pair = pairwise_color_loss(logits, lab, boxes, 0.3)
    cons = depth_consistency_loss(logits, depth, boxes, 0.5, 0.05)
    dl = depth_loss(dpred, target, boxes)
    ramp = linear_warmup(25, 100)
    assert ramp == 0.25
    ref = 0.7 * proj + ramp * (1.3 * pair + 0.4 * cons) + 2.0 * dl
    assert out["mask_total"].item() == pytest.approx(ref.item(), rel=1e-12)
    late = BoxLossConfig(**{**cfg.__dict__, "depth_consistency_start": 15})  # cons ramp: 0.1
    out = mask_losses(logits, dpred, boxes, lab, depth, (target, valid), 25, late)
    ref = 0.7 * proj + 0.25 * 1.3 * pair + 0.1 * 0.4 * cons + 2.0 * dl
    assert out["mask_total"].item() == pytest.approx(ref.item(), rel=1e-12)
    assert out["cons"].item() == pytest.approx(cons.item())
    off = mask_losses(logits, None, boxes, lab, None, None, 25, cfg)  # the BoxInst baseline
    assert off["cons"].item() == 0.0 and off["depth"].item() == 0.0
    assert off["mask_total"].item() == pytest.approx((0.7 * proj + 0.25 * 1.3 * pair).item())


def test_mask_loss_glue_depth_gate_and_projection_bce():
    """``loss.depth_gate`` gates L_pair's colour pairs by depth (only with L_cons on) and
    ``loss.projection_bce_weight`` adds the BCE projection; both off in the preset."""
    from deal_ros.losses.boxinst import projection_bce_loss
    from deal_ros.losses.depth_consistency import depth_step_gate

    g = torch.Generator().manual_seed(5)
    n, h, w = 3, 8, 10
    logits = torch.randn(n, 1, h, w, generator=g, dtype=torch.float64)
    boxes = torch.zeros(n, 1, h, w, dtype=torch.float64)
    boxes[:, :, 1:7, 2:9] = 1
    lab = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64)  # colours all alike
    depth = torch.ones(n, 1, h, w, dtype=torch.float64)
    depth[:, :, 3:6, 4:7] = 0.8  # an object nearer than its surroundings
    base = {"pairwise_warmup": 0, "depth_scale": 0.05, "depth_weight": 0.0}
    plain = mask_losses(logits, None, boxes, lab, depth, None, 5, BoxLossConfig(**base))
    cfg = BoxLossConfig(**base, depth_gate=True, projection_bce_weight=0.5)
    out = mask_losses(logits, None, boxes, lab, depth, None, 5, cfg)
    gate = depth_step_gate(depth, 0.5, 0.05)
    assert not gate.all()
    pair = pairwise_color_loss(logits, lab, boxes, 0.3, gate=gate)
    bce = projection_bce_loss(logits, boxes)
    assert out["pair"].item() == pytest.approx(pair.item(), rel=1e-12)
    assert out["pair"].item() != pytest.approx(plain["pair"].item(), rel=1e-3)
    assert out["proj_bce"].item() == pytest.approx(bce.item(), rel=1e-12)
    assert plain["proj_bce"].item() == 0.0
    ref = plain["mask_total"] - plain["pair"] + pair + 0.5 * bce
    assert out["mask_total"].item() == pytest.approx(ref.item(), rel=1e-12)
    no_cons = BoxLossConfig(**{**cfg.__dict__, "depth_consistency_weight": 0.0})
    ungated = mask_losses(logits, None, boxes, lab, depth, None, 5, no_cons)
    assert ungated["pair"].item() == pytest.approx(plain["pair"].item(), rel=1e-12)
    preset = load_box_config("box", [])
    assert preset.loss.depth_gate is False and preset.loss.projection_bce_weight == 0.0
    keys = ["loss.depth_gate=true", "loss.projection_bce_weight=0.5"]
    assert load_box_config("box", keys).loss.depth_gate is True
    with pytest.raises(DealError, match="projection_bce_weight"):
        load_box_config("box", ["loss.projection_bce_weight=-1"])


def test_warmup_and_start_as_fractions_of_the_run():
    cfg = BoxLossConfig(pairwise_warmup=0.11, depth_consistency_start=0.2)
    steps = loss_in_steps(cfg, 1000)
    assert (steps.pairwise_warmup, steps.depth_consistency_start) == (110, 200)
    assert loss_in_steps(BoxLossConfig(pairwise_warmup=500), 1000).pairwise_warmup == 500
    assert cfg.pairwise_warmup == 0.11  # the config itself is left as written
    with pytest.raises(DealError, match="pairwise_warmup"):
        load_box_config(None, ["loss.pairwise_warmup=-1"])


def test_reliable_dice_glue_matches_formula():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 1, 5, 6, generator=g, dtype=torch.float64)
    pseudo = (torch.rand(3, 5, 6, generator=g) > 0.5).double()
    scores = torch.tensor([0.9, 0.5, 0.85], dtype=torch.float64)
    p = torch.sigmoid(logits)[:, 0]
    dice = [
        1 - 2 * (p[k] * pseudo[k]).sum() / ((p[k] ** 2).sum() + (pseudo[k] ** 2).sum() + 1e-5)
        for k in range(3)
    ]
    ref = 4.0 * (dice[0] + dice[2]) / 2  # only the scores above tau_m = 0.8
    assert distill_loss(logits, pseudo, scores, 0.8, 4.0).item() == pytest.approx(ref.item())


def _figure2_scene():
    """An object (near, 1.0) in front of a wall (far, 2.0): 24 x 24 mask-resolution cells.
    The object covers rows 6..17, cols 6..11 (a tall object); the ground-truth box is
    tight around it. Candidate A straddles the depth step (the left half of the box is
    object, the right half the wall behind it) with exactly the same box as candidate B,
    which follows the object: equal IoU, different depth consistency."""
    depth = torch.full((24, 24), 2.0, dtype=torch.float64)
    depth[6:18, 6:12] = 1.0
    gt = torch.tensor([[6.0, 6.0, 12.0, 18.0]], dtype=torch.float64)
    b_mask = torch.zeros(24, 24, dtype=torch.float64)
    b_mask[6:18, 6:12] = 1.0
    a_mask = torch.zeros(24, 24, dtype=torch.float64)
    a_mask[6:18, 6:9] = 1.0  # object half
    a_mask[6:18, 12:15] = 1.0  # wall half, outside the object
    a_mask[6:8, 9:12] = 1.0
    masks = torch.stack([a_mask, b_mask])
    boxes = torch.tensor([[6.0, 6.0, 12.0, 18.0]] * 2, dtype=torch.float64)  # same predicted box
    return gt, masks, boxes, depth


def test_depth_aware_matching_picks_the_depth_consistent_mask():
    gt, masks, boxes, depth = _figure2_scene()
    scores = torch.tensor([0.9, 0.9], dtype=torch.float64)
    cfg = DistillConfig(alpha=0.8, beta=0.2, tau=0.8, match="depth")
    pseudo, s = match_pseudo(gt, masks, boxes, scores, depth, cfg, depth_tau=0.5, depth_scale=1.0)
    assert torch.equal(pseudo[0], masks[1])  # B, the mask that follows the object
    assert s[0].item() == pytest.approx(1.0)  # IoU 1, depth score 1 -> reliable (> 0.8)
    # IoU alone cannot tell them apart: the tie goes to the first candidate, the straddling one
    iou_only = DistillConfig(match="iou")
    pseudo_iou, s_iou = match_pseudo(gt, masks, boxes, scores, depth, iou_only)
    assert torch.equal(pseudo_iou[0], masks[0])
    assert s_iou[0].item() == pytest.approx(1.0)
    # more boxes than candidates: the extra box gets an empty mask and score 0
    two = torch.cat([gt, torch.tensor([[0.0, 0.0, 4.0, 4.0]], dtype=torch.float64)])
    p2, s2 = match_pseudo(two, masks[1:], boxes[1:], scores[1:], depth, cfg)
    assert p2[1].sum() == 0 and s2[1] == 0 and s2[0] > 0.8


def test_soft_pseudo_masks_keep_the_teachers_probabilities():
    gt, masks, boxes, depth = _figure2_scene()
    probs = masks * 0.4 + 0.3  # an under-confident teacher: 0.7 on its mask, 0.3 off it
    scores = torch.tensor([0.9, 0.9], dtype=torch.float64)
    soft = DistillConfig(match="iou", pseudo="soft")
    pseudo, _ = match_pseudo(gt, probs, boxes, scores, depth, soft)
    assert torch.equal(pseudo[0], probs[0])
    binary, _ = match_pseudo(gt, probs, boxes, scores, depth, DistillConfig(match="iou"))
    assert torch.equal(binary[0], masks[0])  # cut at 0.5: the mask itself


def _two_masks_in_boxes(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random mask logits (2, 1, 8, 10), their boxes (rows 2-5, columns 3-7) and a random Lab
    image, float64."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 1, 8, 10, generator=g, dtype=torch.float64)
    boxes = torch.zeros(2, 1, 8, 10, dtype=torch.float64)
    boxes[:, :, 2:6, 3:8] = 1
    lab = torch.rand(2, 3, 8, 10, generator=g, dtype=torch.float64)
    return logits, boxes, lab


def test_mask_loss_glue_pairwise_outside():
    """``loss.pairwise_outside`` reaches L_pair and L_cons; the dataclass default is the
    papers' (off); the box preset turns it on (issue 17: +4-6 mask AP for the baseline)."""
    logits, boxes, lab = _two_masks_in_boxes(7)
    depth = torch.ones_like(logits)
    base = {"pairwise_warmup": 0, "depth_scale": 0.05, "depth_weight": 0.0}
    off = mask_losses(logits, None, boxes, lab, depth, None, 5, BoxLossConfig(**base))
    cfg = BoxLossConfig(**base, pairwise_outside=True)
    on = mask_losses(logits, None, boxes, lab, depth, None, 5, cfg)
    pair = pairwise_color_loss(logits, lab, boxes, 0.3, outside=True)
    cons = depth_consistency_loss(logits, depth, boxes, 0.5, 0.05, outside=True)
    assert on["pair"].item() == pytest.approx(pair.item(), rel=1e-12)
    assert on["cons"].item() == pytest.approx(cons.item(), rel=1e-12)
    assert on["pair"].item() != pytest.approx(off["pair"].item(), rel=1e-3)
    assert on["cons"].item() != pytest.approx(off["cons"].item(), rel=1e-3)
    assert BoxLossConfig().pairwise_outside is False
    assert load_box_config("box", []).loss.pairwise_outside is True
    assert load_box_config("box", ["loss.pairwise_outside=false"]).loss.pairwise_outside is False


def test_mask_loss_glue_in_box_projection_and_background_outside():
    """``loss.projection_inside`` and ``loss.outside_weight`` reach L_proj and L_out (logged
    as "out"); the dataclass defaults are BoxInst's (off), and so is the box preset's (issue 17:
    on, they collapse the masks of short tiny runs; bench/README.md); bad values are refused."""
    from deal_ros.losses.boxinst import outside_box_loss, projection_loss

    logits, boxes, lab = _two_masks_in_boxes(3)
    base = {"pairwise_warmup": 0, "depth_weight": 0.0, "depth_consistency_weight": 0.0}
    off = mask_losses(logits, None, boxes, lab, None, None, 5, BoxLossConfig(**base))
    cfg = BoxLossConfig(**base, projection_inside=True, outside_weight=0.5)
    on = mask_losses(logits, None, boxes, lab, None, None, 5, cfg)
    probs = torch.sigmoid(logits)
    assert on["proj"].item() == pytest.approx(projection_loss(probs, boxes, True).item(), 1e-12)
    assert off["proj"].item() == pytest.approx(projection_loss(probs, boxes).item(), 1e-12)
    out = outside_box_loss(logits, boxes, "outside")
    assert on["out"].item() == pytest.approx(out.item(), rel=1e-12) and off["out"].item() == 0.0
    extra = on["proj"] - off["proj"] + 0.5 * out
    assert (on["mask_total"] - off["mask_total"]).item() == pytest.approx(extra.item(), rel=1e-9)
    paper = BoxLossConfig()
    assert paper.projection_inside is False and paper.outside_weight == 0.0
    preset = load_box_config("box", []).loss
    assert preset.projection_inside is False and preset.outside_weight == 0.0
    assert preset.outside_norm == "outside"
    keys = ["loss.projection_inside=true", "loss.outside_weight=1"]
    on = load_box_config("box", keys).loss
    assert on.projection_inside is True and on.outside_weight == 1.0
    with pytest.raises(DealError, match="outside_weight"):
        load_box_config("box", ["loss.outside_weight=-1"])
    with pytest.raises(DealError, match="outside_norm"):
        load_box_config("box", ["loss.outside_norm=area"])
