"""L_surf (``deal_ros.losses.surround_depth``): the box's surround plane, the prior, the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deal_ros.instance.config import BoxLossConfig
from deal_ros.instance.losses import mask_losses
from deal_ros.losses.boxinst import outside_box_loss
from deal_ros.losses.surround_depth import surround_loss, surround_prior, surround_targets

H, W = 60, 80


def _slanted_table(obj: torch.Tensor | None = None, rise: float = 0.08) -> torch.Tensor:
    """Depth of a table receding upwards (1.0 m at the bottom, 1.6 m at the top, tilting
    sideways too); ``obj`` (H,W bool) stands ``rise`` nearer than the table behind it."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64),
                          torch.arange(W, dtype=torch.float64), indexing="ij")  # fmt: skip
    depth = 1.6 - 0.01 * v + 0.002 * u
    if obj is not None:
        depth = torch.where(obj, depth - rise, depth)
    return depth


def _disc(cy: float, cx: float, r: float) -> torch.Tensor:
    v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    return (v - cy) ** 2 + (u - cx) ** 2 <= r * r


def test_the_prior_finds_an_object_the_colour_of_a_slanted_table():
    obj = _disc(30, 40, 10)  # fills ~79 % of its box
    depth = _slanted_table(obj)
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[30, 28:34] = False  # an IR-shadow hole on the object's edge
    box = torch.tensor([30.0, 20.0, 51.0, 41.0])
    q, w = surround_prior(depth, valid, box)
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[20:41, 30:51] = True
    assert torch.equal(w > 0, inside & valid)  # scored: valid box pixels only
    assert float(q[~inside].abs().sum()) == 0.0
    assert torch.equal(q[w > 0] > 0.5, obj[w > 0])  # exact on every scored pixel
    # a single depth threshold cannot do this on the slanted table: its far edge is nearer
    # than the object's near edge is far
    assert float(depth[obj].max()) > float(depth[inside & ~obj].min())


def test_no_depth_step_no_ring_or_no_depth_means_no_weight():
    valid = torch.ones(H, W, dtype=torch.bool)
    box = torch.tensor([30.0, 20.0, 51.0, 41.0])
    _, w = surround_prior(_slanted_table(), valid, box)  # the box holds table only
    assert float(w.sum()) == 0.0
    full = torch.zeros(H, W, dtype=torch.bool)
    full[20:41, 30:51] = True  # the object fills its box: no depth step inside it
    _, w = surround_prior(_slanted_table(full), valid, box)
    assert float(w.sum()) == 0.0
    ring_gone = valid.clone()
    ring_gone[10:50, 20:60] = False
    ring_gone[20:41, 30:51] = True
    _, w = surround_prior(_slanted_table(_disc(30, 40, 10)), ring_gone, box)
    assert float(w.sum()) == 0.0
    q, w = surround_prior(torch.zeros(H, W, dtype=torch.float64), valid, box)
    assert float(w.sum()) == 0.0 and float(q.sum()) == 0.0


def test_the_fit_ignores_another_object_in_the_ring():
    obj = _disc(30, 40, 10)
    neighbour = torch.zeros(H, W, dtype=torch.bool)
    neighbour[18:44, 51:56] = True  # a nearer object along the box's right side
    depth = torch.where(neighbour, _slanted_table() - 0.3, _slanted_table(obj))
    q, w = surround_prior(
        depth, torch.ones(H, W, dtype=torch.bool), torch.tensor([30.0, 20.0, 51.0, 41.0])
    )
    scored = w > 0
    agree = (q[scored] > 0.5) == obj[scored]
    assert float(agree.double().mean()) > 0.97


def test_targets_average_the_prior_over_mask_cells_and_index_images():
    obj = _disc(30, 40, 10)
    depth = torch.stack([_slanted_table(), _slanted_table(obj)])[:, None]
    valid = torch.ones_like(depth, dtype=torch.bool)
    boxes = torch.tensor([[30.0, 20.0, 51.0, 41.0], [30.0, 20.0, 51.0, 41.0]])
    prior, weight = surround_targets(depth, valid, boxes, torch.tensor([1, 0]))
    assert prior.shape == weight.shape == (2, 1, H // 4, W // 4)
    q, w = surround_prior(depth[1, 0], valid[1, 0], boxes[0])
    ref_w = F.avg_pool2d(w[None, None], 4, 4)[0, 0]
    ref_q = F.avg_pool2d((q * w)[None, None], 4, 4)[0, 0] / ref_w.clamp_min(1e-12)
    assert torch.allclose(weight[0, 0], ref_w) and torch.allclose(prior[0, 0], ref_q)
    assert float(weight[1].sum()) == 0.0  # image 0 has no object in that box


def _mask_terms(seed: int, n: int = 2, h: int = 6, w: int = 7):
    """Random float64 mask logits, prior, weight and L*a*b* (N,C,h,w), and the generator."""
    g = torch.Generator().manual_seed(seed)
    logits, prior, weight = (
        f(n, 1, h, w, generator=g, dtype=torch.float64)
        for f in (torch.randn, torch.rand, torch.rand)
    )
    lab = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64) * 50
    return g, logits, prior, weight, lab


def test_surround_loss_is_the_weighted_bce_and_joins_the_mask_loss_under_cons():
    g, logits, prior, weight, lab = _mask_terms(5)
    n, h, w = logits.shape[0], logits.shape[2], logits.shape[3]
    p = torch.sigmoid(logits)
    bce = -(prior * p.log() + (1 - prior) * (1 - p).log())
    ref = (weight * bce).sum() / weight.sum()
    assert surround_loss(logits, prior, weight).item() == pytest.approx(ref.item(), rel=1e-10)
    boxes = torch.ones(n, 1, h, w, dtype=torch.float64)
    depth = 1.0 + torch.rand(n, 1, h, w, generator=g, dtype=torch.float64) * 0.1
    cfg = BoxLossConfig(depth_consistency_weight=0.5, surround_weight=2.0, depth_weight=0)
    args = (logits, None, boxes, lab, depth, None, 10, cfg)
    on = mask_losses(*args, (prior, weight))
    off = mask_losses(*args)
    assert on["surf"].item() == pytest.approx(ref.item(), rel=1e-10)
    gap = on["mask_total"] - off["mask_total"]
    assert gap.item() == pytest.approx(0.5 * 2.0 * ref.item(), rel=1e-10)
    base = BoxLossConfig(depth_consistency_weight=0, surround_weight=2.0, depth_weight=0)
    baseline = mask_losses(logits, None, boxes, lab, None, None, 10, base, (prior, weight))
    assert baseline["surf"].item() == 0.0  # the baseline keys turn L_surf off


def test_surround_background_adds_the_outside_background_to_l_surf_only():
    _, logits, prior, weight, lab = _mask_terms(7)
    boxes = torch.zeros_like(logits)
    boxes[:, :, 1:4, 2:5] = 1
    cfg = BoxLossConfig(surround_weight=1.5, surround_background=0.5, depth_weight=0)
    out = mask_losses(logits, None, boxes, lab, None, None, 10, cfg, (prior, weight))
    ref = surround_loss(logits, prior, weight) + 0.5 * outside_box_loss(logits, boxes, "outside")
    assert out["surf"].item() == pytest.approx(ref.item(), rel=1e-10)
    assert out["out"].item() == 0.0  # loss.outside_weight, the box term, stays off
    off = BoxLossConfig(surround_weight=0, surround_background=0.5, depth_weight=0)
    assert (
        mask_losses(logits, None, boxes, lab, None, None, 10, off, (prior, weight))["surf"].item()
        == 0.0
    )


def test_the_box_preset_trains_l_surf_and_the_baseline_keys_turn_it_off():
    from deal_ros.instance.config import load_box_config

    lo = load_box_config("box", []).loss
    assert lo.surround_weight > 0 and lo.surround_background > 0 and lo.depth_consistency_weight > 0
    keys = ["loss.depth_consistency_weight=0", "loss.depth_weight=0", "model.depth_guided=false"]
    base = load_box_config("box", [*keys, "distill.enabled=false"])
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 1, 6, 7, generator=g)
    boxes = torch.ones(2, 1, 6, 7)
    lab = torch.rand(2, 3, 6, 7, generator=g) * 50
    prior, weight = torch.rand(2, 1, 6, 7, generator=g), torch.ones(2, 1, 6, 7)
    out = mask_losses(logits, None, boxes, lab, None, None, 10, base.loss, (prior, weight))
    assert out["surf"].item() == 0.0
    with pytest.raises(Exception, match="surround_weight"):
        load_box_config("box", ["loss.surround_weight=-1"])
