"""The fix of issue 17's L masks: the in-box projection (``projection_loss(inside=True)``) and
L_out (``outside_box_loss``, background outside the box).

Real torch, no mocks. The L-shaped minimum (a thin line one cell outside a tight box, the box
interior background) and its variant on the image border both meet BoxInst's max-projections
for about one extra row and column of Dice and are bound by no counted pair; the in-box
projection and L_out must price them above the filled box, where both are 0."""

from __future__ import annotations

import pytest
import torch

from deal_ros.losses import pairwise_color_loss, projection_loss, rgb_to_lab
from deal_ros.losses.boxinst import BoxInstLoss, boxinst_terms, outside_box_loss

H, W, Y0, Y1, X0, X1 = 24, 28, 6, 16, 8, 20


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    rgb = torch.full((1, 3, H, W), 0.15, dtype=torch.float64)
    rgb[..., Y0:Y1, X0:X1] = torch.tensor([0.9, 0.25, 0.2], dtype=torch.float64).view(3, 1, 1)
    box = torch.zeros(1, 1, H, W, dtype=torch.float64)
    box[..., Y0:Y1, X0:X1] = 1
    return rgb, box


def _rim_l(box: torch.Tensor) -> torch.Tensor:
    rim = torch.zeros_like(box)
    rim[..., Y0 - 1, X0 - 1 : X1] = 1
    rim[..., Y0 - 1 : Y1, X0 - 1] = 1
    return rim


def _border_l(box: torch.Tensor) -> torch.Tensor:
    """The L of seed 2: the box's columns on the image's top row, its rows on the left column."""
    line = torch.zeros_like(box)
    line[..., 0, X0:X1] = 1
    line[..., Y0:Y1, 0] = 1
    return line


def logits_of(m: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    return (2 * m - 1) * scale


@pytest.mark.parametrize("make", [_rim_l, _border_l], ids=["rim", "border"])
def test_the_l_minimum_is_free_under_boxinst_and_costly_under_l_out(make):
    rgb, box = _scene()
    lab, wrong = rgb_to_lab(rgb), make(box)
    right = [logits_of(box), logits_of(wrong)]
    # BoxInst (Tian et al.) cannot tell them apart: projection Dice barely, pairwise not at all
    assert projection_loss(torch.sigmoid(right[1]), box).item() < 0.3
    pair = [pairwise_color_loss(x, lab, box).item() for x in right]
    assert pair[0] < 1e-3 and pair[1] < 1e-3
    plain = [boxinst_terms(x, box, lab, 1, warmup_iters=1)["loss"].item() for x in right]
    assert plain[1] - plain[0] < 0.3
    # the in-box projection (ours): the L earns no credit, both projections empty
    inside = [projection_loss(torch.sigmoid(x), box, inside=True).item() for x in right]
    assert inside[0] < 1e-3 and inside[1] > 1.9
    # L_out (ours): 0 at the filled box, about (cells of the L) * 10 / Z for the L
    cells = wrong.sum().item()
    for norm, z in (("box", box.sum().item()), ("outside", (1 - box).sum().item())):
        out = [outside_box_loss(x, box, norm).item() for x in right]
        assert out[0] < 1e-3
        assert out[1] == pytest.approx(cells * 10.0 / z, rel=1e-3)
    ours = dict(warmup_iters=1, outside_weight=1.0, projection_inside=True)
    terms = [boxinst_terms(x, box, lab, 1, **ours)["loss"].item() for x in right]
    assert terms[1] - terms[0] > 1.9  # the filled box is now the cheaper answer by far


def test_l_out_normalisers_and_the_gradient_at_saturated_logits():
    _, box = _scene()
    wrong = logits_of(_rim_l(box), 40.0).requires_grad_(True)
    per_box = outside_box_loss(wrong, box, "box")
    per_out = outside_box_loss(wrong, box, "outside")
    inside, outside = box.sum().item(), (1 - box).sum().item()
    assert per_box.item() / per_out.item() == pytest.approx(outside / inside, rel=1e-9)
    per_box.backward()  # the box normaliser: the rim pixels' gradient is sigmoid(40) / |box|
    g = wrong.grad[_rim_l(box) > 0]
    # the pull on a saturated line does not die (Dice's does)
    assert torch.allclose(g, torch.full_like(g, 1.0 / inside), rtol=1e-9)
    assert wrong.grad[box > 0].abs().max().item() == 0.0  # inside the box: no opinion


def test_l_out_is_a_mean_over_instances_and_checks_its_input():
    _, box = _scene()
    two = torch.cat([logits_of(box), logits_of(_rim_l(box))])
    both = outside_box_loss(two, torch.cat([box, box]))
    each = [outside_box_loss(two[i : i + 1], box).item() for i in (0, 1)]
    assert both.item() == pytest.approx(sum(each) / 2, rel=1e-9)
    assert outside_box_loss(two[:0], box[:0]).item() == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        outside_box_loss(two, box[..., :5])
    with pytest.raises(ValueError, match="norm"):
        outside_box_loss(two, torch.cat([box, box]), "area")


def test_boxinst_module_and_default_keep_the_paper():
    rgb, box = _scene()
    rim = logits_of(_rim_l(box))
    paper = BoxInstLoss(warmup_iters=1)(rim, box, rgb, step=1)
    assert paper["outside"].item() == 0.0  # off by default: BoxInst as published
    ours = BoxInstLoss(warmup_iters=1, outside_weight=0.5)(rim, box, rgb, step=1)
    ref = outside_box_loss(rim, box, "outside")  # the default normaliser
    assert ours["outside"].item() == pytest.approx(ref.item(), rel=1e-12)
    assert ours["loss"].item() == pytest.approx(paper["loss"].item() + 0.5 * ref.item(), rel=1e-9)
    inside = BoxInstLoss(warmup_iters=1, projection_inside=True)(rim, box, rgb, step=1)
    ref = projection_loss(torch.sigmoid(rim), box, inside=True)
    assert inside["projection"].item() == pytest.approx(ref.item(), rel=1e-12)
    assert paper["projection"].item() < inside["projection"].item()


def test_in_box_projection_equals_boxinst_for_masks_inside_their_box():
    """Masks that keep to their box project alike either way: the option only removes the
    credit of pixels outside the box."""
    _, box = _scene()
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(3, 1, H, W, generator=g, dtype=torch.float64) * box
    boxes = box.expand(3, -1, -1, -1)
    ours = projection_loss(probs, boxes, inside=True)
    assert ours.item() == pytest.approx(projection_loss(probs, boxes).item(), rel=1e-12)


def test_both_projections_price_the_l_above_the_filled_box():
    """``inside_projection_weight`` keeps BoxInst's whole-mask projection and adds the in-box
    one: the L (box interior empty) costs the in-box term ~2, the filled box 0 either way."""
    rgb, box = _scene()
    rim, filled = logits_of(_rim_l(box)), logits_of(box)
    both = BoxInstLoss(warmup_iters=1, inside_projection_weight=1.0)
    paper = BoxInstLoss(warmup_iters=1)
    for mask in (rim, filled):
        whole = projection_loss(torch.sigmoid(mask), box)
        inner = projection_loss(torch.sigmoid(mask), box, inside=True)
        got = both(mask, box, rgb, step=1)["projection"].item()
        assert got == pytest.approx(whole.item() + inner.item(), rel=1e-12)
        assert paper(mask, box, rgb, step=1)["projection"].item() == pytest.approx(whole.item())
    assert both(rim, box, rgb, step=1)["projection"].item() > 1.5  # the L is expensive
    assert both(filled, box, rgb, step=1)["projection"].item() < 0.05
    assert paper(rim, box, rgb, step=1)["projection"].item() < 0.5  # and nearly free without


def test_depth_pairs_beyond_colour_count_each_pair_once():
    """``depth_pairs="beyond_colour"``: L_cons joins only the pairs L_pair leaves out. One
    colour everywhere: colour joins every pair, L_cons has none left; colours all apart: it
    has them all, as the paper's L_cons; half and half: its pairs share one normaliser."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, H, W, generator=g, dtype=torch.float64)
    _, box = _scene()
    boxes = box.expand(2, -1, -1, -1)
    depth = torch.ones(1, 1, H, W, dtype=torch.float64)  # flat: every pair depth-consistent
    flat = torch.full((1, 3, H, W), 0.4, dtype=torch.float64)
    noisy = torch.rand(1, 3, H, W, generator=g, dtype=torch.float64) * 40  # L*a*b* far apart
    kw = dict(step=1, depth=depth, warmup_iters=1)
    for lab, cons_left in ((flat, False), (noisy, True)):
        paper = boxinst_terms(logits, boxes, lab, **kw)
        ours = boxinst_terms(logits, boxes, lab, depth_pairs="beyond_colour", **kw)
        assert ours["pairwise"].item() == pytest.approx(paper["pairwise"].item(), rel=1e-12)
        if cons_left:
            assert ours["depth_consistency"].item() == pytest.approx(
                paper["depth_consistency"].item(), rel=1e-9
            )
        else:
            assert ours["depth_consistency"].item() == 0.0
            assert paper["depth_consistency"].item() > 0.1  # the paper counts them twice
    with pytest.raises(ValueError, match="depth_pairs"):
        boxinst_terms(logits, boxes, flat, depth_pairs="some", **kw)
