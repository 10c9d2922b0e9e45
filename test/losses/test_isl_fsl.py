"""GAP / importance sampling losses and the windowed feature similarity loss."""

from __future__ import annotations

import math

import pytest
import torch

from deal_ros.losses import (
    FSLLoss,
    ISLLoss,
    feature_similarity_loss,
    gap_multilabel_loss,
    importance_sampling_loss,
    isl_loss,
)
from deal_ros.losses.fsl import window_offsets


def bce(z: float, y: float) -> float:
    """-(y log sig(z) + (1-y) log sig(-z)), plain Python."""
    return -(y * -math.log1p(math.exp(-z)) + (1 - y) * -math.log1p(math.exp(z)))


def test_gap_loss_matches_formula():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn((3, 4, 5, 6), generator=g, dtype=torch.float64)
    labels = (torch.rand((3, 4), generator=g) > 0.5).double()
    expect = 0.0
    for b in range(3):
        for k in range(4):
            s = float(logits[b, k].sum()) / 30
            expect += bce(s, float(labels[b, k]))
    got = gap_multilabel_loss(logits, labels).item()
    assert got == pytest.approx(expect / 12, rel=1e-12)


def test_importance_sampling_matches_reference_with_same_draws():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn((2, 3, 4, 5), generator=g, dtype=torch.float64)
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    got = importance_sampling_loss(logits, labels, 7, torch.Generator().manual_seed(9)).item()
    # reference: the same draws, then the soft margin formula per sampled logit
    weights = torch.sigmoid(logits.reshape(6, 20)) + 1e-5
    idx = torch.multinomial(
        weights, 7, replacement=True, generator=torch.Generator().manual_seed(9)
    )
    flat = logits.reshape(6, 20)
    expect = sum(
        bce(float(flat[r, int(i)]), float(labels.reshape(6)[r])) for r in range(6) for i in idx[r]
    ) / (6 * 7)
    assert got == pytest.approx(expect, rel=1e-12)


def test_importance_sampling_prefers_active_pixels_and_mixes():
    logits = torch.full((1, 2, 8, 8), -12.0, dtype=torch.float64)
    logits[0, :, 3, 4] = 5.0  # one strongly active pixel per map
    labels = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    is_loss = importance_sampling_loss(logits, labels, 50, torch.Generator().manual_seed(0))
    # sigmoid(5) / (sigmoid(5) + 63 * (sigmoid(-12) + 1e-5)) ~ 0.999: (almost) always that pixel
    assert is_loss.item() == pytest.approx((bce(5.0, 1.0) + bce(5.0, 0.0)) / 2, rel=1e-2)
    mixed = isl_loss(logits, labels, 0.2, 50, torch.Generator().manual_seed(0))
    gap = gap_multilabel_loss(logits, labels)
    assert mixed.item() == pytest.approx(0.8 * gap.item() + 0.2 * is_loss.item(), rel=1e-12)
    assert isl_loss(logits, labels, 0.0).item() == pytest.approx(gap.item(), rel=1e-12)


def test_isl_gradient_reaches_only_sampled_pixels():
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)
    importance_sampling_loss(logits, torch.ones(2, 3), num_samples=4).backward()
    touched = (logits.grad != 0).reshape(6, -1).sum(1)
    assert bool((touched >= 1).all()) and bool((touched <= 4).all())
    module = ISLLoss()
    assert (module.mix, module.num_samples) == (0.2, 10)
    with pytest.raises(ValueError, match="mix"):
        ISLLoss(mix=1.5)
    with pytest.raises(ValueError, match="labels"):
        gap_multilabel_loss(torch.randn(2, 3, 4, 4), torch.ones(2, 4))


# ---- FSL ---------------------------------------------------------------------------------


def ref_fsl(x, y, mu=2.5, sigma=5.0, radius=None):
    """The authors' dense formula over ordered pixel pairs (loops, float64)."""
    b, cx, h, w = x.shape
    pts = [(r, c) for r in range(h) for c in range(w)]
    total = 0.0
    for i in range(b):
        for p in pts:
            for q in pts:
                dist2 = (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2
                if dist2 == 0 or (radius is not None and dist2 > radius * radius):
                    continue
                dx = sum(abs(float(x[i, c, p[0], p[1]] - x[i, c, q[0], q[1]])) for c in range(cx))
                dx = min(max(dx / cx, 0.0), 1.0)
                eta = math.tanh(mu + math.log((dx + 1e-5) / (1 - dx + 1e-5)))
                dy = 0.5 * float(((y[i, :, p[0], p[1]] - y[i, :, q[0], q[1]]) ** 2).sum())
                g = math.exp(-0.5 * dist2 / sigma**2) / (2 * math.pi * sigma**2)
                total += g * eta * dy
    return -total / (b * h * w)


@pytest.mark.parametrize("shape,radius", [((1, 3, 2, 4, 5), 100.0), ((2, 1, 3, 5, 4), 2.0)])
def test_fsl_matches_dense_reference(shape, radius):
    b, cx, k, h, w = shape
    g = torch.Generator().manual_seed(h * w)
    x = torch.rand((b, cx, h, w), generator=g, dtype=torch.float64)
    x[:, :, : h // 2] = 0.5  # a flat region: similar colours
    y = torch.rand((b, k, h, w), generator=g, dtype=torch.float64)
    got = feature_similarity_loss(x, y, radius=radius, sigma=1.5).item()
    # radius 100 covers every pair: the authors' full-image loss
    ref_radius = None if radius >= math.hypot(h, w) else radius
    assert got == pytest.approx(ref_fsl(x, y, sigma=1.5, radius=ref_radius), rel=1e-10)


def test_fsl_gradcheck_of_the_custom_backward():
    g = torch.Generator().manual_seed(3)
    x = torch.rand((2, 3, 4, 5), generator=g, dtype=torch.float64)
    y = torch.rand((2, 2, 4, 5), generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: feature_similarity_loss(x, t, radius=2.5), (y,))


def test_fsl_pulls_same_colour_pixels_together():
    x = torch.zeros(1, 3, 6, 6)
    y_same = torch.zeros(1, 2, 6, 6)
    y_split = y_same.clone()
    y_split[..., :3] = 1.0  # prediction edge inside a flat colour region
    assert feature_similarity_loss(x, y_split).item() > feature_similarity_loss(x, y_same).item()
    x_edge = x.clone()
    x_edge[..., :3] = 1.0  # the same prediction edge on a colour edge is rewarded
    assert feature_similarity_loss(x_edge, y_split).item() < 0


def test_fsl_memory_is_bounded_by_the_inputs():
    """Saved-for-backward bytes are the inputs only, whatever the radius (no HW x HW matrix)."""
    saved: list[int] = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    x = torch.rand(1, 3, 32, 32)
    y = torch.rand(1, 4, 32, 32, requires_grad=True)
    bound = (x.numel() + y.numel()) * 4
    for radius in (3.0, 8.0):
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = FSLLoss(radius=radius)(torch.rand(1, 3, 64, 64), y)
        loss.backward()
        assert sum(saved) <= bound, (radius, sum(saved), bound)
    dense_pairs_bytes = (32 * 32) ** 2 * 4
    assert bound < dense_pairs_bytes / 100
    offsets = window_offsets(10.0)
    assert (
        len(offsets)
        == sum(1 for dy in range(-10, 11) for dx in range(-10, 11) if 0 < dy * dy + dx * dx <= 100)
        // 2
    )
