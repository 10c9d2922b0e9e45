"""Box-supervised terms: LAB, BoxInst projection/pairwise, depth consistency, dice, matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deal_ros.losses import (
    BoxInstLoss,
    box_iou,
    color_similarity,
    depth_aware_match,
    depth_consistency_loss,
    depth_consistency_score,
    dice_loss,
    linear_warmup,
    masks_to_boxes,
    pairwise_color_loss,
    projection_loss,
    reliable_dice_loss,
    rgb_to_lab,
)
from deal_ros.losses.boxinst import boxinst_terms, projection_bce_loss
from deal_ros.losses.depth_consistency import consistent_pairs, slope_similarity

OFFSETS = [(u * 2, v * 2) for u in (-1, 0, 1) for v in (-1, 0, 1) if (u, v) != (0, 0)]


def ref_lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """sRGB -> Lab (D65) per pixel from the standard formulas."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    m = [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
    white = [0.95047, 1.0, 1.08883]
    xyz = [sum(m[i][j] * lin[j] for j in range(3)) / white[i] for i in range(3)]
    f = [t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def test_rgb_to_lab_known_values_and_reference():
    known = {
        (1, 0, 0): (53.2408, 80.0925, 67.2032),
        (0, 0, 1): (32.2970, 79.1875, -107.8602),
        (1, 1, 1): (100.0, 0.0, 0.0),
        (0, 0, 0): (0.0, 0.0, 0.0),
    }
    rgb = torch.tensor(list(known), dtype=torch.float64).t().reshape(1, 3, len(known), 1)
    lab = rgb_to_lab(rgb)[0, :, :, 0].t()
    np.testing.assert_allclose(lab.numpy(), np.array(list(known.values())), atol=5e-3)
    g = torch.Generator().manual_seed(1)
    img = torch.rand((1, 3, 3, 4), generator=g, dtype=torch.float64)
    img[0, :, 0, 0] = 0.01  # the linear segments of both formulas
    lab = rgb_to_lab(img)
    for r in range(3):
        for c in range(4):
            expect = ref_lab(tuple(float(v) for v in img[0, :, r, c]))
            np.testing.assert_allclose(lab[0, :, r, c].numpy(), expect, atol=1e-10)


def ref_dice(x: np.ndarray, t: np.ndarray) -> float:
    return 1 - 2 * float((x * t).sum()) / (float((x * x).sum()) + float((t * t).sum()) + 1e-5)


def random_instances(n=3, h=9, w=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn((n, 1, h, w), generator=g, dtype=torch.float64)
    boxes = torch.zeros((n, 1, h, w), dtype=torch.float64)
    for i in range(n):
        boxes[i, 0, 1 + i : h - 2, 2 : w - 1 - i] = 1.0
    return logits, boxes, g


def test_projection_loss_matches_reference():
    logits, boxes, _ = random_instances()
    probs = torch.sigmoid(logits)
    p, b = probs[:, 0].numpy(), boxes[:, 0].numpy()
    expect = np.mean(
        [ref_dice(p[i].max(0), b[i].max(0)) + ref_dice(p[i].max(1), b[i].max(1)) for i in range(3)]
    )
    assert projection_loss(probs, boxes).item() == pytest.approx(expect, rel=1e-12)
    assert projection_loss(boxes, boxes).item() == pytest.approx(0.0, abs=1e-5)  # eps only


def ref_pairwise(logits, sim_or_depth, boxes, select, n_img_channels):
    """-mean log P(same) over in-box centre pixels and selected in-image neighbour pairs."""
    n, _, h, w = logits.shape
    total, count = 0.0, 0
    for i in range(n):
        src = sim_or_depth[i if sim_or_depth.shape[0] > 1 else 0]
        for r in range(h):
            for c in range(w):
                if boxes[i, 0, r, c] == 0:
                    continue
                for dy, dx in OFFSETS:
                    rr, cc = r + dy, c + dx
                    if not (0 <= rr < h and 0 <= cc < w) or not select(src, (r, c), (rr, cc)):
                        continue
                    pi = 1 / (1 + math.exp(-float(logits[i, 0, r, c])))
                    pj = 1 / (1 + math.exp(-float(logits[i, 0, rr, cc])))
                    total += -math.log(pi * pj + (1 - pi) * (1 - pj))
                    count += 1
    return total / max(count, 1)


def test_colour_similarity_and_pairwise_loss_match_reference():
    logits, boxes, g = random_instances(seed=2)
    lab = rgb_to_lab(torch.rand((1, 3, 9, 11), generator=g, dtype=torch.float64))
    lab[..., :4, :] = lab[..., :1, :1]  # a uniform patch: similar colours

    def colour_sim(img, p, q):
        d = math.sqrt(sum(float(img[ch, p[0], p[1]] - img[ch, q[0], q[1]]) ** 2 for ch in range(3)))
        return math.exp(-d / 2)

    sim = color_similarity(lab)
    r, c = 5, 6
    for k, (dy, dx) in enumerate(OFFSETS):
        assert sim[0, k, r, c].item() == pytest.approx(colour_sim(lab[0], (r, c), (r + dy, c + dx)))
    assert sim[0, 0, 0, 0].item() == 0.0  # neighbour outside the image
    expect = ref_pairwise(logits, lab, boxes, lambda s, p, q: colour_sim(s, p, q) >= 0.3, 3)
    got = pairwise_color_loss(logits, lab, boxes, threshold=0.3).item()
    assert got == pytest.approx(expect, rel=1e-10)


def test_depth_consistency_loss_matches_reference_and_skips_invalid():
    logits, boxes, g = random_instances(seed=3)
    depth = 1.0 + torch.rand((3, 1, 9, 11), generator=g, dtype=torch.float64) * 0.3
    depth[1, :, :, 6:] += 2.0  # a depth step: those pairs are not "like terms"
    depth[2, 0, 4, 5] = 0.0  # invalid pixel

    def like(d, p, q):
        a, b = float(d[0, p[0], p[1]]), float(d[0, q[0], q[1]])
        return a > 0 and b > 0 and math.exp(-abs(a - b)) > 0.5

    expect = ref_pairwise(logits, depth, boxes, like, 1)
    got = depth_consistency_loss(logits, depth, boxes, tau=0.5).item()
    assert got == pytest.approx(expect, rel=1e-10)
    scaled = depth_consistency_loss(logits, depth * 10, boxes, depth_scale=10.0).item()
    assert scaled == pytest.approx(got, rel=1e-10)


def test_depth_consistency_with_slopes_matches_reference():
    logits, boxes, g = random_instances(seed=6)
    depth = 1.0 + torch.rand((3, 1, 9, 11), generator=g, dtype=torch.float64) * 0.05
    depth[0, 0, 3, 3] = 0.0  # a hole: no slope there nor at its 4 neighbours

    def slope(d, p):
        r, c = p
        h, w = d.shape[-2:]
        if not (0 < r < h - 1 and 0 < c < w - 1):
            return None
        around = [d[0, r, c], d[0, r, c - 1], d[0, r, c + 1], d[0, r - 1, c], d[0, r + 1, c]]
        if min(float(v) for v in around) <= 0:
            return None
        return (
            float(d[0, r, c + 1] - d[0, r, c - 1]) / 2,
            float(d[0, r + 1, c] - d[0, r - 1, c]) / 2,
        )

    def like(d, p, q):
        a, b = float(d[0, p[0], p[1]]), float(d[0, q[0], q[1]])
        ga, gb = slope(d, p), slope(d, q)
        if a <= 0 or b <= 0 or ga is None or gb is None:
            return False
        s_g = math.exp(-(abs(ga[0] - gb[0]) + abs(ga[1] - gb[1])) / 0.02)
        return math.exp(-abs(a - b) / 0.1) > 0.5 and s_g > 0.5

    expect = ref_pairwise(logits, depth, boxes, like, 1)
    got = depth_consistency_loss(logits, depth, boxes, 0.5, 0.1, slope_scale=0.02).item()
    assert got == pytest.approx(expect, rel=1e-10)


def test_slopes_split_a_face_from_the_table_it_stands_on():
    """A vertical face (constant depth) meeting a table whose depth grows up the image: at the
    contact row both have the same depth, so S_d joins them; their slopes differ (S_g)."""
    h, w = 12, 12
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    table = 2.0 - 0.02 * rows  # farther up the image
    depth = table.clone()
    depth[:8, 4:8] = table[8, 0]  # the face stands on row 8, where it meets the table
    depth = depth[None, None]
    up = OFFSETS.index((-2, 0))  # the neighbour two rows up
    across = OFFSETS.index((0, -2))  # two columns left
    plain = consistent_pairs(depth, 0.5, 0.1)
    both = consistent_pairs(depth, 0.5, 0.1, slope_scale=0.01)
    # face cell (6, 4), its left neighbour (6, 2) is table at a nearby depth
    assert bool(plain[0, across, 6, 4]) and not bool(both[0, across, 6, 4])
    # inside the face, and on the slanted table: still consistent
    assert bool(both[0, up, 6, 5]) and bool(both[0, up, 10, 1])
    assert slope_similarity(depth, slope_scale=0.01)[0, up, 10, 1].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="slope_scale"):
        slope_similarity(depth, slope_scale=0.0)


def test_pairwise_gradcheck_and_boxinst_warmup():
    logits, boxes, g = random_instances(n=2, h=6, w=7, seed=4)
    rgb = torch.rand((1, 3, 6, 7), generator=g, dtype=torch.float64)
    depth = torch.rand((1, 1, 6, 7), generator=g, dtype=torch.float64) + 1
    logits.requires_grad_()
    lab = rgb_to_lab(rgb)

    def f(t):
        return (
            pairwise_color_loss(t, lab, boxes)
            + depth_consistency_loss(t, depth, boxes)
            + projection_loss(torch.sigmoid(t), boxes)
        )

    assert torch.autograd.gradcheck(f, (logits,), fast_mode=True)
    assert [linear_warmup(s, 10000) for s in (0, 2500, 10000, 20000)] == [0.0, 0.25, 1.0, 1.0]
    module = BoxInstLoss(depth_start=2000, projection_weight=2.0)
    at0 = module(logits, boxes, rgb, step=0, depth=depth)
    assert at0["depth_consistency"].item() > 0  # computed, but both ramps are still at 0
    assert at0["loss"].item() == pytest.approx(2 * at0["projection"].item(), rel=1e-12)
    at5k = module(logits, boxes, rgb, step=5000, depth=depth)  # ramps 0.5 and 0.3
    expect = 2 * at5k["projection"] + 0.5 * at5k["pairwise"] + 0.3 * at5k["depth_consistency"]
    assert at5k["loss"].item() == pytest.approx(expect.item(), rel=1e-12)


def test_dice_and_reliable_dice():
    g = torch.Generator().manual_seed(5)
    student = torch.rand((4, 5, 6), generator=g, dtype=torch.float64)
    teacher = (torch.rand((4, 5, 6), generator=g) > 0.5).double()
    per = [ref_dice(student[i].numpy(), teacher[i].numpy()) for i in range(4)]
    np.testing.assert_allclose(dice_loss(student, teacher, reduction="none").numpy(), per)
    scores = torch.tensor([0.9, 0.5, 0.81, 0.8])
    got = reliable_dice_loss(student, teacher, scores).item()
    assert got == pytest.approx(4.0 * (per[0] + per[2]) / 2, rel=1e-12)
    none = reliable_dice_loss(student, teacher, torch.zeros(4))
    assert none.item() == 0.0
    with pytest.raises(ValueError, match="scores"):
        reliable_dice_loss(student, teacher, torch.zeros(3))


def two_layer_scene():
    """An object at 1 m (rows/cols 4..11) in front of a 3 m wall, 16 x 16, and two masks."""
    depth = torch.full((16, 16), 3.0, dtype=torch.float64)
    depth[4:12, 4:12] = 1.0
    good = torch.zeros(16, 16, dtype=torch.float64)
    good[4:12, 4:12] = 1.0  # follows the object
    bad = torch.zeros(16, 16, dtype=torch.float64)
    bad[4:12, 8:16] = 1.0  # same size, half object and half wall: straddles the depth step
    return depth, good, bad


def test_depth_consistency_score():
    depth, good, bad = two_layer_scene()
    scores = depth_consistency_score(torch.stack([good, bad]), depth, tau=0.5)
    assert scores[0].item() == pytest.approx(1.0) and scores[1].item() < 0.97
    # reference Eq. 8 with pair weight m_i m_j, loops
    num = den = 0.0
    for r in range(16):
        for c in range(16):
            for dy, dx in OFFSETS:
                rr, cc = r + dy, c + dx
                if 0 <= rr < 16 and 0 <= cc < 16:
                    s = math.exp(-abs(float(depth[r, c] - depth[rr, cc])))
                    wgt = float(bad[r, c] * bad[rr, cc]) * s
                    den += wgt
                    num += wgt * (s > 0.5)
    assert scores[1].item() == pytest.approx(num / den, rel=1e-12)


def test_box_iou_and_masks_to_boxes():
    a = torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 2.0, 6.0, 6.0]])
    b = torch.tensor([[0.0, 0.0, 4.0, 4.0], [4.0, 4.0, 8.0, 8.0]])
    np.testing.assert_allclose(box_iou(a, b).numpy(), [[1.0, 0.0], [4 / 28, 4 / 28]])
    _, good, bad = two_layer_scene()
    boxes = masks_to_boxes(torch.stack([good, bad, torch.zeros_like(good)]))
    np.testing.assert_array_equal(boxes.numpy(), [[4, 4, 12, 12], [8, 4, 16, 12], [0, 0, 0, 0]])


def test_hungarian_prefers_the_depth_consistent_mask():
    depth, good, bad = two_layer_scene()
    # the gt box is equidistant (same IoU) from both masks' boxes: IoU alone cannot choose
    gt = torch.tensor([[6.0, 4.0, 14.0, 12.0]])
    iou = box_iou(gt, masks_to_boxes(torch.stack([good, bad])))
    assert iou[0, 0].item() == pytest.approx(iou[0, 1].item())
    for order in ([0, 1], [1, 0]):
        masks = torch.stack([good, bad])[order]
        result = depth_aware_match(gt, masks, depth, pred_scores=torch.tensor([0.7, 0.7]))
        assert result.gt_index.tolist() == [0]
        assert result.pred_index.tolist() == [order.index(0)]
        assert result.score[0] == pytest.approx(0.8 * iou[0, 0].item() + 0.2 * 1.0)
    # two boxes, three masks: one-to-one, each box gets its depth-consistent mask
    depth2 = depth.clone()
    depth2[:, 12:] = 1.5
    depth2[4:12, 12:16] = 2.0
    other = torch.zeros_like(good)
    other[4:12, 12:16] = 1.0
    gts = torch.tensor([[6.0, 4.0, 14.0, 12.0], [12.0, 4.0, 16.0, 12.0]])
    result = depth_aware_match(gts, torch.stack([bad, other, good]), depth2)
    assert dict(zip(result.gt_index.tolist(), result.pred_index.tolist())) == {0: 2, 1: 1}


def test_depth_gate_leaves_colour_pairs_across_depth_steps_out():
    """The gated pairwise term = BoxInst's with the colour pairs whose depths both exist and
    differ (S_d <= tau) left out; pairs touching invalid depth keep their colour verdict."""
    from deal_ros.losses.depth_consistency import depth_step_gate

    logits, boxes, g = random_instances(seed=8)
    lab = torch.rand((3, 3, 9, 11), generator=g, dtype=torch.float64) * 2.0  # all alike
    depth = torch.ones((3, 1, 9, 11), dtype=torch.float64)
    depth[:, :, 3:7, 4:8] = 0.8  # a nearer object inside every box
    depth[0, 0, 2, 2] = 0.0  # a hole
    stack = torch.cat([lab, depth], 1)

    def kept(s, p, q):
        d = math.sqrt(sum(float(s[ch, p[0], p[1]] - s[ch, q[0], q[1]]) ** 2 for ch in range(3)))
        if math.exp(-d / 2) < 0.3:
            return False
        a, b = float(s[3, p[0], p[1]]), float(s[3, q[0], q[1]])
        return a <= 0 or b <= 0 or math.exp(-abs(a - b) / 0.05) > 0.5

    gate = depth_step_gate(depth, tau=0.5, depth_scale=0.05)
    got = pairwise_color_loss(logits, lab, boxes, 0.3, gate=gate).item()
    assert got == pytest.approx(ref_pairwise(logits, stack, boxes, kept, 4), rel=1e-10)
    assert got != pytest.approx(pairwise_color_loss(logits, lab, boxes, 0.3).item(), rel=1e-3)
    # in boxinst_terms the gate belongs to the depth-consistency family: off without it
    kw = {"color_threshold": 0.3, "warmup_iters": 0, "depth_scale": 0.05, "depth_gate": True}
    on = boxinst_terms(logits, boxes, lab, 5, depth, **kw)
    off = boxinst_terms(logits, boxes, lab, 5, depth, **{**kw, "depth_weight": 0.0})
    assert on["pairwise"].item() == pytest.approx(got, rel=1e-10)
    assert off["pairwise"].item() == pytest.approx(
        pairwise_color_loss(logits, lab, boxes, 0.3).item(), rel=1e-10
    )


def test_projection_bce_matches_reference_and_pulls_saturated_masks():
    logits, boxes, _ = random_instances(seed=9)
    x, b = logits[:, 0].numpy(), boxes[:, 0].numpy()

    def bce(z, t):
        return float(np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))))

    expect = np.mean(
        [bce(x[i].max(0), b[i].max(0)) + bce(x[i].max(1), b[i].max(1)) for i in range(3)]
    )
    assert projection_bce_loss(logits, boxes).item() == pytest.approx(expect, rel=1e-12)
    # a mask saturated off (logit -40): Dice has no gradient left, the BCE still pulls
    dead = torch.full_like(logits, -40.0, requires_grad=True)
    projection_loss(torch.sigmoid(dead), boxes).backward()
    assert dead.grad.abs().max().item() < 1e-15
    dead.grad = None
    projection_bce_loss(dead, boxes).backward()
    assert dead.grad.sum().item() < -0.5  # pushes the box columns' maxima up
    with pytest.raises(ValueError, match="shapes differ"):
        projection_bce_loss(logits, boxes[:, :, :5])


def test_pairwise_outside_binds_a_mask_on_the_rim_of_a_tight_box():
    """Issue 17: a uniform square in a tight box; the mask an "L" one cell OUTSIDE the box
    (the row above it, the column left of it), the interior background. With centres in the
    box only (BoxInst), no counted pair sees the L (its in-box partners differ in colour), so
    L_pair is as low as for the filled square; ``outside=True`` counts the background pairs
    around it and prices it above the filled square, in L_pair and L_cons alike."""
    h, w, y0, y1, x0, x1 = 24, 28, 6, 16, 8, 20
    rgb = torch.full((1, 3, h, w), 0.15, dtype=torch.float64)
    rgb[..., y0:y1, x0:x1] = torch.tensor([0.9, 0.25, 0.2], dtype=torch.float64).view(3, 1, 1)
    lab = rgb_to_lab(rgb)
    depth = torch.full((1, 1, h, w), 1.5, dtype=torch.float64)
    depth[..., y0:y1, x0:x1] = 1.2
    box = torch.zeros(1, 1, h, w, dtype=torch.float64)
    box[..., y0:y1, x0:x1] = 1
    rim = torch.zeros_like(box)
    rim[..., y0 - 1, x0 - 1 : x1] = 1
    rim[..., y0 - 1 : y1, x0 - 1] = 1
    as_logits = lambda m: (2 * m - 1) * 10  # noqa: E731
    assert projection_loss(torch.sigmoid(as_logits(rim)), box).item() < 0.25  # Dice barely sees it
    for outside in (False, True):
        pair = [pairwise_color_loss(as_logits(m), lab, box, outside=outside) for m in (box, rim)]
        cons = [
            depth_consistency_loss(as_logits(m), depth, box, 0.5, 0.05, outside=outside)
            for m in (box, rim)
        ]
        assert pair[0].item() < 1e-3 and cons[0].item() < 1e-3  # the filled square
        if outside:
            assert pair[1].item() > 0.1 and cons[1].item() > 0.1
        else:
            assert pair[1].item() < 1e-3 and cons[1].item() < 1e-3  # BoxInst: the L is free
    t = boxinst_terms(as_logits(rim), box, lab, 1, depth, warmup_iters=1, depth_scale=0.05,
                      pairwise_outside=True)  # fmt: skip
    ref = pairwise_color_loss(as_logits(rim), lab, box, outside=True)
    assert t["pairwise"].item() == pytest.approx(ref.item(), rel=1e-12)
    ref = depth_consistency_loss(as_logits(rim), depth, box, 0.5, 0.05, outside=True)
    assert t["depth_consistency"].item() == pytest.approx(ref.item(), rel=1e-12)
