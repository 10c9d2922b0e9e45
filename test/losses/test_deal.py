"""DEAL: the edge alignment formula against a float64 loop reference, and the depth pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deal_ros.data.depth_noise import DepthNoise
from deal_ros.losses import DEALLoss, edge_activation, edge_alignment_loss
from deal_ros.losses.depth_resample import resample_depth
from deal_ros.losses.edges import normalize_edges, sobel_magnitude


def reference_alignment(a, d, y, mu=2.5, eps=1e-6, valid=None):
    """The paper's formula with Python loops (float64); images that cannot contribute skip."""
    a, d, y = a.double().numpy(), d.double().numpy(), y.double().numpy()
    b, k, h, w = a.shape
    v = np.ones((b, 1, h, w)) if valid is None else valid.double().numpy()

    def act(x):
        x = min(max(x, eps), 1 - eps)
        return math.tanh(mu + math.log(x / (1 - x)))

    losses = []
    for i in range(b):
        n_pos = y[i].sum()
        wsum = v[i].sum()
        if n_pos <= 0 or wsum <= 0:
            continue
        total = 0.0
        for r in range(h):
            for c in range(w):
                s = sum(y[i, kk] * act(a[i, kk, r, c]) for kk in range(k)) / n_pos
                total += v[i, 0, r, c] * s * act(d[i, 0, r, c])
        losses.append(-total / wsum)
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("shape", [(1, 1, 3, 4), (3, 4, 5, 7), (2, 3, 6, 2)])
def test_edge_alignment_matches_loop_reference(shape):
    g = torch.Generator().manual_seed(sum(shape))
    b, k, h, w = shape
    a = torch.rand(shape, generator=g, dtype=torch.float64)
    d = torch.rand((b, 1, h, w), generator=g, dtype=torch.float64)
    a[0, 0, 0, 0], d[0, 0, -1, -1] = 0.0, 1.0  # exercise the eps clamp
    y = (torch.rand((b, k), generator=g) > 0.4).double()
    y[0, 0] = 1.0
    valid = torch.rand((b, 1, h, w), generator=g) > 0.3
    valid[0, 0, 0, 0] = True
    for v in (None, valid):
        got = edge_alignment_loss(a, d, y, valid=v)
        assert got.item() == pytest.approx(reference_alignment(a, d, y, valid=v), abs=1e-10)


def test_edge_alignment_float_weights_and_mu():
    g = torch.Generator().manual_seed(3)
    a = torch.rand((2, 2, 4, 4), generator=g, dtype=torch.float64)
    d = torch.rand((2, 1, 4, 4), generator=g, dtype=torch.float64)
    y = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    wts = torch.rand((2, 1, 4, 4), generator=g, dtype=torch.float64)
    got = edge_alignment_loss(a, d, y, mu=1.0, valid=wts)
    assert got.item() == pytest.approx(reference_alignment(a, d, y, mu=1.0, valid=wts), abs=1e-10)


def test_activation_crosses_zero_at_sigmoid_minus_mu():
    mu = 2.5
    x0 = 1.0 / (1.0 + math.exp(mu))
    e = torch.tensor([x0 * 0.9, x0, x0 * 1.1], dtype=torch.float64)
    act = edge_activation(e, mu)
    assert act[0] < 0 and abs(act[1]) < 1e-12 and act[2] > 0


def test_label_free_image_contributes_nothing():
    g = torch.Generator().manual_seed(5)
    a = torch.rand((3, 2, 5, 5), generator=g, dtype=torch.float64, requires_grad=True)
    d = torch.rand((3, 1, 5, 5), generator=g, dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    full = edge_alignment_loss(a, d, y)
    keep = [0, 2]
    sub = edge_alignment_loss(a[keep].detach(), d[keep], y[keep])
    assert full.item() == pytest.approx(sub.item(), abs=1e-12)  # mean over labelled images
    full.backward()
    assert torch.all(a.grad[1] == 0) and a.grad[0].abs().sum() > 0
    per = edge_alignment_loss(a.detach(), d, y, reduction="none")
    assert per[1].item() == 0.0 and per[0].item() != 0.0


def test_edge_alignment_gradcheck():
    g = torch.Generator().manual_seed(7)
    a = (torch.rand((2, 2, 3, 3), generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    d = torch.rand((2, 1, 3, 3), generator=g, dtype=torch.float64) * 0.9 + 0.05
    y = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    valid = torch.rand((2, 1, 3, 3), generator=g) > 0.2
    assert torch.autograd.gradcheck(
        lambda t: edge_alignment_loss(t, d, y, valid=valid), (a,), fast_mode=True
    )


def test_edge_alignment_rejects_bad_shapes():
    a, d, y = torch.rand(2, 3, 4, 4), torch.rand(2, 1, 4, 4), torch.ones(2, 3)
    with pytest.raises(ValueError, match="y"):
        edge_alignment_loss(a, d, torch.ones(2, 4))
    with pytest.raises(ValueError, match="d"):
        edge_alignment_loss(a, torch.rand(2, 1, 5, 4), y)
    with pytest.raises(ValueError, match="valid"):
        edge_alignment_loss(a, d, y, valid=torch.ones(2, 1, 3, 4, dtype=torch.bool))


def reference_sobel(x: np.ndarray) -> np.ndarray:
    """Sobel/8 magnitude with replicate padding, loops (float64)."""
    h, w = x.shape
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8.0
    out = np.zeros_like(x)
    for r in range(h):
        for c in range(w):
            gx = gy = 0.0
            for i in range(3):
                for j in range(3):
                    v = x[min(max(r + i - 1, 0), h - 1), min(max(c + j - 1, 0), w - 1)]
                    gx += kx[i, j] * v
                    gy += kx[j, i] * v
            out[r, c] = math.sqrt(gx * gx + gy * gy)
    return out


def test_sobel_and_normalisations_match_reference():
    g = torch.Generator().manual_seed(11)
    x = torch.rand((2, 1, 6, 5), generator=g, dtype=torch.float64)
    m = sobel_magnitude(x, tiny=0.0)
    for i in range(2):
        np.testing.assert_allclose(m[i, 0].numpy(), reference_sobel(x[i, 0].numpy()), atol=1e-12)
    valid = torch.rand((2, 1, 6, 5), generator=g) > 0.3
    for i in range(2):
        vals = m[i, 0][valid[i, 0]].numpy()
        expect = {
            "max": np.clip(m[i, 0].numpy() / max(vals.max(), 1e-3), 1e-6, 1 - 1e-6),
            "percentile": np.clip(
                m[i, 0].numpy() / max(np.percentile(vals, 90), 1e-3), 1e-6, 1 - 1e-6
            ),
            "fixed": np.clip(m[i, 0].numpy() / 0.3, 1e-6, 1 - 1e-6),
        }
        for mode, ref in expect.items():
            got = normalize_edges(m, mode, valid=valid, scale=0.3, percentile=90)[i, 0]
            np.testing.assert_allclose(got.numpy(), ref, atol=1e-12, err_msg=mode)


@pytest.mark.parametrize("antialias", [True, False])
def test_resampling_equals_bicubic_and_support_is_exact(antialias):
    g = torch.Generator().manual_seed(13)
    z = torch.rand((1, 1, 40, 56), generator=g, dtype=torch.float64)
    ok = torch.ones_like(z, dtype=torch.bool)
    kw = dict(mode="bicubic", align_corners=False, antialias=antialias)
    out, ok_out = resample_depth(z, ok, (10, 14), antialias=antialias, min_support_valid=1.0)
    assert torch.allclose(out, F.interpolate(z, size=(10, 14), **kw), atol=1e-12)
    assert bool(ok_out.all())
    # one hole: exactly the CAM pixels whose value depends on that source pixel become invalid
    ok[0, 0, 17, 23] = False
    _, ok_out = resample_depth(z, ok, (10, 14), antialias=antialias, min_support_valid=1.0)
    delta = torch.zeros_like(z)
    delta[0, 0, 17, 23] = 1.0
    touched = F.interpolate(delta, size=(10, 14), **kw) != 0
    assert torch.equal(~ok_out, touched) and int(touched.sum()) > 0
    # the relaxed rule keeps a pixel whose support is mostly valid
    _, ok_half = resample_depth(z, ok, (10, 14), antialias=antialias, min_support_valid=0.5)
    assert bool(ok_half.all())


def test_normalised_resampling_ignores_hole_values():
    g = torch.Generator().manual_seed(17)
    z = torch.rand((2, 1, 36, 44), generator=g, dtype=torch.float64) + 1.0
    ok = torch.rand((2, 1, 36, 44), generator=g) > 0.15
    ok[1] = False
    outs = []
    for fill in (0.0, 1e6, float("nan")):
        out, ok_out = resample_depth(z.where(ok, fill), ok, (9, 11), min_support_valid=0.5)
        outs.append(out)
        assert torch.isfinite(out).all() and not bool(ok_out[1].any())
        assert bool(ok_out[0].sum() > 50)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    const, ok_c = resample_depth(torch.full_like(z, 2.5), ok, (9, 11), min_support_valid=0.5)
    assert torch.allclose(const[ok_c], torch.full_like(const[ok_c], 2.5), atol=1e-12)


def scene(shift: int = 0, size: int = 64, stride: int = 4):
    """A 0.6 m square on a 1.5 m wall; CAM = object coverage at 1/stride, optionally shifted."""
    depth = torch.full((1, 1, size, size), 1.5)
    depth[..., 20:44, 16:40] = 0.6
    obj = torch.zeros(1, 1, size, size)
    obj[..., 20:44, 16:40] = 1.0
    cam = F.avg_pool2d(obj, stride)
    cam = torch.roll(cam, (shift, shift), (2, 3))
    return cam, depth


def test_aligned_edges_beat_shifted_edges():
    loss = DEALLoss()
    labels = torch.ones(1, 1)
    _, depth = scene(0)
    noisy = torch.from_numpy(
        DepthNoise(sigma_coeff=0.003, hole_count=(2, 2), hole_radius=(0.03, 0.05))(depth.numpy(), 0)
    )
    for dep in (depth, noisy):
        values = [loss(scene(s)[0], dep, labels).item() for s in (0, 1, 2, 3)]
        assert values[0] < values[1] < values[2], values
        assert values[0] < values[3] - 0.3, values
        assert all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("edge_norm", ["max", "percentile", "fixed"])
@pytest.mark.parametrize("transform", ["inverse", "log", "metres"])
def test_all_invalid_depth_gives_zero_and_no_nan_grad(edge_norm, transform):
    loss = DEALLoss(edge_norm=edge_norm, depth_transform=transform)
    cams = torch.rand(2, 3, 8, 8, requires_grad=True)
    depth = torch.zeros(2, 1, 32, 32)
    depth[1] = float("nan")
    out = loss(cams, depth, torch.ones(2, 3))
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(cams.grad).all() and cams.grad.abs().sum() == 0


def test_holes_do_not_create_edges():
    """A hole in a flat wall must not read as a depth edge (it would without masking)."""
    loss = DEALLoss(edge_norm="fixed", depth_scale=1.0)
    depth = torch.full((1, 1, 64, 64), 1.0)
    depth[..., 24:40, 24:40] = 0.0  # RealSense hole
    d, ok = loss.depth_edges(depth, (16, 16))
    assert bool(ok.any()) and not bool(ok[..., 6:10, 6:10].any())
    act = edge_activation(d, loss.mu)
    assert bool((act[ok] < 0).all())  # flat everywhere it is valid
    naive = sobel_magnitude(
        F.interpolate(
            depth.reciprocal().nan_to_num(posinf=0.0), (16, 16), mode="bicubic", antialias=True
        )
    )
    assert bool((edge_activation((naive / 1.0).clamp(1e-6, 1 - 1e-6)) > 0).any())


def test_valid_argument_and_nan_depth_are_masked():
    loss = DEALLoss()
    cams, depth = scene(0)
    cams = cams.repeat(2, 1, 1, 1).requires_grad_()
    depth = depth.repeat(2, 1, 1, 1)
    depth[1, :, :32] = float("inf")
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[0, :, 32:] = False
    out = loss(cams, depth, torch.ones(2, 1), valid)
    out.backward()
    assert math.isfinite(out.item()) and torch.isfinite(cams.grad).all()
    _, ok = loss.depth_edges(depth, (16, 16), valid)
    assert not bool(ok[0, :, 9:].any()) and not bool(ok[1, :, :7].any())


def test_deal_loss_rejects_bad_inputs():
    loss = DEALLoss()
    with pytest.raises(ValueError, match="edge_norm"):
        DEALLoss(edge_norm="median")
    with pytest.raises(ValueError, match="depth_transform"):
        DEALLoss(depth_transform="disparity")
    with pytest.raises(ValueError, match="millimetres"):
        loss(torch.rand(1, 2, 4, 4), torch.ones(1, 1, 8, 8, dtype=torch.int32), torch.ones(1, 2))
    with pytest.raises(ValueError, match="depth"):
        loss(torch.rand(1, 2, 4, 4), torch.ones(1, 2, 8, 8), torch.ones(1, 2))
    with pytest.raises(ValueError, match="batch"):
        loss(torch.rand(2, 2, 4, 4), torch.ones(1, 1, 8, 8), torch.ones(2, 2))


def test_deal_trains_a_cam_towards_the_depth_edge():
    """A few sign-gradient steps on a blurred, shifted CAM move its boundary onto the depth
    edge (plain steps: torch.optim's first step imports dynamo, seconds of test time)."""
    loss = DEALLoss()
    target, depth = scene(0)
    cam0 = torch.roll(F.avg_pool2d(F.pad(target, (1, 1, 1, 1), mode="replicate"), 3, 1), 1, 3)
    z = torch.logit(cam0.clamp(0.02, 0.98)).requires_grad_()
    labels = torch.ones(1, 1)

    def iou(c):
        p, t = c > 0.5, target > 0.5
        return float((p & t).sum() / (p | t).sum())

    before = iou(cam0)
    for _ in range(15):
        cam = torch.sigmoid(z)
        total = loss(cam, depth, labels) + ((cam - cam0) ** 2).mean()
        (grad,) = torch.autograd.grad(total, z)
        with torch.no_grad():
            z -= 0.2 * grad.sign()
    assert iou(torch.sigmoid(z)) > before + 0.1
