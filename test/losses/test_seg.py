"""Segmentation losses (CE, softmax focal, Lovász-Softmax, registry) vs float64 references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from deal_ros.losses import (
    CrossEntropyLoss,
    FocalLoss,
    LovaszSoftmaxLoss,
    build_seg_loss,
    cross_entropy,
    focal_loss,
    lovasz_softmax,
)

IGNORE = 255
SHAPES = [(1, 2, 3, 4), (2, 4, 5, 3), (3, 3, 2, 6)]


def random_case(shape, seed, ignore_frac=0.25):
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, c, (b, h, w), generator=g)
    labels[torch.rand((b, h, w), generator=g) < ignore_frac] = IGNORE
    labels.view(-1)[0] = 0  # at least one valid pixel
    return logits, labels


def pixels(logits, labels):
    """(probabilities list, label) pairs of the non-ignored pixels, plain Python."""
    b, c, h, w = logits.shape
    out = []
    for i, r, s in itertools.product(range(b), range(h), range(w)):
        y = int(labels[i, r, s])
        if y == IGNORE:
            continue
        z = [float(logits[i, k, r, s]) for k in range(c)]
        m = max(z)
        e = [math.exp(v - m) for v in z]
        out.append(([v / sum(e) for v in e], y))
    return out


def ref_focal(logits, labels, gamma, alpha=None):
    px = pixels(logits, labels)
    terms = [
        -(1.0 if alpha is None else alpha[y]) * (1 - p[y]) ** gamma * math.log(p[y]) for p, y in px
    ]
    return sum(terms) / len(terms)


def ref_ce(logits, labels, weight=None):
    px = pixels(logits, labels)
    w = [1.0 if weight is None else weight[y] for _, y in px]
    return sum(-wi * math.log(p[y]) for wi, (p, y) in zip(w, px)) / sum(w)


@pytest.mark.parametrize("shape", SHAPES)
def test_cross_entropy_matches_reference(shape):
    logits, labels = random_case(shape, 1)
    weight = [0.5 + k for k in range(shape[1])]
    assert cross_entropy(logits, labels).item() == pytest.approx(ref_ce(logits, labels), 1e-10)
    got = cross_entropy(logits, labels, weight=weight).item()
    assert got == pytest.approx(ref_ce(logits, labels, weight), rel=1e-10)
    assert CrossEntropyLoss(weight)(logits, labels).item() == pytest.approx(got, rel=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_matches_reference(shape, gamma):
    logits, labels = random_case(shape, 2)
    alpha = [0.25 + 0.5 * k for k in range(shape[1])]
    got = focal_loss(logits, labels, gamma=gamma).item()
    assert got == pytest.approx(ref_focal(logits, labels, gamma), rel=1e-10)
    got_a = focal_loss(logits, labels, gamma=gamma, alpha=alpha).item()
    assert got_a == pytest.approx(ref_focal(logits, labels, gamma, alpha), rel=1e-10)
    module = FocalLoss(gamma=gamma, alpha=torch.tensor(alpha))
    assert module(logits, labels).item() == pytest.approx(got_a, rel=1e-6)


def test_focal_gamma0_is_cross_entropy_and_alpha_weights_pixels():
    logits, labels = random_case((2, 3, 6, 5), 3)
    assert focal_loss(logits, labels, gamma=0).item() == pytest.approx(
        cross_entropy(logits, labels).item(), rel=1e-12
    )
    alpha = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    per_pixel = focal_loss(logits, labels, gamma=0, alpha=alpha, reduction="none")
    plain = focal_loss(logits, labels, gamma=0, reduction="none")
    valid = labels != IGNORE
    assert torch.allclose(per_pixel[valid], plain[valid] * alpha[labels[valid]])
    assert torch.all(per_pixel[~valid] == 0)
    assert torch.all(per_pixel[labels == 1] == 0)  # alpha 0 silences class 1


def test_focal_down_weights_easy_pixels():
    logits = torch.tensor([[[[6.0]], [[0.0]]]], dtype=torch.float64)  # confident class 0
    easy = torch.zeros(1, 1, 1, dtype=torch.long)
    assert focal_loss(logits, easy, gamma=2).item() < 1e-3 * cross_entropy(logits, easy).item()


def test_focal_and_ce_gradcheck():
    logits, labels = random_case((2, 3, 3, 2), 4)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: focal_loss(t, labels, gamma=2.0), (logits,), fast_mode=True
    )
    assert torch.autograd.gradcheck(
        lambda t: focal_loss(t, labels, gamma=0.5), (logits,), fast_mode=True
    )
    assert torch.autograd.gradcheck(lambda t: cross_entropy(t, labels), (logits,), fast_mode=True)


def test_all_ignored_gives_zero_not_nan():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    labels = torch.full((2, 4, 4), IGNORE)
    for fn in (cross_entropy, focal_loss):
        out = fn(logits, labels)
        out.backward()
        assert out.item() == 0.0 and torch.isfinite(logits.grad).all()
    assert lovasz_softmax(logits.softmax(1), labels).item() == 0.0


def test_label_errors_are_clear():
    logits = torch.randn(1, 3, 2, 2)
    with pytest.raises(ValueError, match="class id 7"):
        cross_entropy(logits, torch.tensor([[[0, 7], [1, 2]]]))
    with pytest.raises(ValueError, match="integer"):
        focal_loss(logits, torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="spatial"):
        lovasz_softmax(logits.softmax(1), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(logits, torch.zeros(1, 2, 2, dtype=torch.long), alpha=[1.0, 2.0])


# ---- Lovász ------------------------------------------------------------------------------


def jaccard_loss_of_set(mistakes: set[int], fg: set[int]) -> float:
    """Delta_J(M) = |M| / |fg ∪ M| (Berman et al.), 0 for an empty union."""
    union = fg | mistakes
    return len(mistakes) / len(union) if union else 0.0


def ref_lovasz_class(probs: list[float], fg_flags: list[bool]) -> float:
    """Lovász extension from its definition: sum_k m_pi(k) (Delta(top-k) - Delta(top-(k-1)))."""
    errors = [abs(float(f) - p) for p, f in zip(probs, fg_flags)]
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    fg = {i for i, f in enumerate(fg_flags) if f}
    total, prev, chosen = 0.0, 0.0, set()
    for i in order:
        chosen.add(i)
        cur = jaccard_loss_of_set(chosen, fg)
        total += errors[i] * (cur - prev)
        prev = cur
    return total


def ref_lovasz(probas, labels, classes="present"):
    c = probas.shape[1]
    p = probas.permute(0, 2, 3, 1).reshape(-1, c).tolist()
    y = labels.reshape(-1).tolist()
    keep = [i for i, v in enumerate(y) if v != IGNORE]
    p, y = [p[i] for i in keep], [y[i] for i in keep]
    ids = range(c) if classes in ("present", "all") else classes
    losses = []
    for k in ids:
        flags = [v == k for v in y]
        if classes == "present" and not any(flags):
            continue
        losses.append(ref_lovasz_class([row[k] for row in p], flags))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("classes", ["present", "all", [0, 1]])
def test_lovasz_matches_definition(shape, classes):
    logits, labels = random_case(shape, 5)
    probas = logits.softmax(1)
    got = lovasz_softmax(probas, labels, classes=classes).item()
    assert got == pytest.approx(ref_lovasz(probas, labels, classes), abs=1e-12)


def test_lovasz_per_image_is_the_mean_over_images():
    logits, labels = random_case((3, 3, 4, 4), 6)
    labels[1] = IGNORE  # an image with no valid pixel is left out
    probas = logits.softmax(1)
    got = lovasz_softmax(probas, labels, per_image=True).item()
    expect = np.mean([ref_lovasz(probas[i : i + 1], labels[i : i + 1]) for i in (0, 2)])
    assert got == pytest.approx(expect, abs=1e-12)


def test_lovasz_equals_one_minus_iou_for_hard_predictions():
    g = torch.Generator().manual_seed(8)
    pred = torch.randint(0, 3, (2, 7, 9), generator=g)
    labels = torch.randint(0, 3, (2, 7, 9), generator=g)
    labels[labels == 2] = 1  # class 2 absent from the labels, present in the prediction
    labels[0, 0, :4] = IGNORE
    probas = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).double()
    valid = labels != IGNORE
    ious = []
    for k in (0, 1):  # the present classes
        p, t = (pred == k) & valid, (labels == k) & valid
        ious.append(float((p & t).sum()) / float((p | t).sum()))
    got = lovasz_softmax(probas, labels).item()
    assert got == pytest.approx(1 - np.mean(ious), abs=1e-12)
    single = lovasz_softmax(probas, labels, classes=[1]).item()
    assert single == pytest.approx(1 - ious[1], abs=1e-12)


def test_lovasz_gradcheck_and_module_from_logits():
    logits, labels = random_case((2, 3, 3, 3), 9)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: lovasz_softmax(t.softmax(1), labels), (logits,), fast_mode=True
    )
    module = LovaszSoftmaxLoss(per_image=True)
    expect = lovasz_softmax(logits.softmax(1), labels, per_image=True)
    assert module(logits, labels).item() == pytest.approx(expect.item(), abs=1e-12)


def test_registry_builds_each_loss_and_rejects_unknown():
    logits, labels = random_case((2, 3, 4, 4), 10)
    ce = build_seg_loss("ce")(logits, labels)
    assert ce.item() == pytest.approx(cross_entropy(logits, labels).item(), rel=1e-12)
    focal = build_seg_loss("focal", gamma=1.0)(logits, labels)
    assert focal.item() == pytest.approx(focal_loss(logits, labels, gamma=1.0).item(), rel=1e-12)
    lov = build_seg_loss("lovasz")(logits, labels)
    assert lov.item() == pytest.approx(lovasz_softmax(logits.softmax(1), labels).item(), 1e-12)
    both = build_seg_loss("ce+lovasz", lovasz_weight=0.5, ignore_index=IGNORE)(logits, labels)
    assert both.item() == pytest.approx(ce.item() + 0.5 * lov.item(), rel=1e-12)
    with pytest.raises(ValueError, match="unknown name 'dice'"):
        build_seg_loss("dice")
    with pytest.raises(ValueError, match="gama"):
        build_seg_loss("focal", gama=2.0)
    with pytest.raises(ValueError, match="unknown option"):
        build_seg_loss("ce+lovasz", foo=1)
