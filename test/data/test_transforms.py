"""Paired RGB-D augmentations keep rgb / depth / valid / mask / K aligned and never blend holes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deal_ros.data.depth_noise import DepthNoise
from deal_ros.data.transforms import (
    RGBD,
    ColorJitter,
    Compose,
    HorizontalFlip,
    RandomCrop,
    RandomDepthNoise,
    RandomScale,
    flip,
    resize,
)


def coded(h: int, w: int, hole_p: float = 0.1, seed: int = 0) -> RGBD:
    """rgb = (row, col, 7); depth = (row * w + col + 1) mm: every pixel names its source."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w]
    rgb = np.stack([rows, cols, np.full_like(rows, 7)], -1).astype(np.uint8)
    depth = ((rows * w + cols + 1) * 1e-3).astype(np.float32)
    depth[rng.random((h, w)) < hole_p] = 0.0
    mask = ((rows // 4 + cols // 4) % 3).astype(np.uint8)
    K = np.array([[100.0, 0, (w - 1) / 2], [0, 100.0, (h - 1) / 2], [0, 0, 1]])
    return RGBD.from_arrays(rgb, depth, mask=mask, K=K)


def blocks(h: int, w: int, cell: int = 8, seed: int = 0) -> RGBD:
    """Piecewise-constant sample: each cell has one colour, one depth (or a hole), one class."""
    rng = np.random.default_rng(seed)
    gh, gw = -(-h // cell), -(-w // cell)
    colours = rng.permutation(256 * 256)[: gh * gw]
    cell_rgb = np.stack([colours // 256, colours % 256, np.full_like(colours, 9)], -1)
    cell_depth = rng.uniform(0.3, 4.0, gh * gw).astype(np.float32)
    cell_depth[rng.random(gh * gw) < 0.3] = 0.0
    idx = (np.arange(h)[:, None] // cell) * gw + np.arange(w)[None, :] // cell
    return (
        RGBD.from_arrays(
            cell_rgb[idx].astype(np.uint8), cell_depth[idx], mask=(idx % 5).astype(np.uint8)
        ),
        cell_rgb,
        cell_depth,
    )


def assert_consistent(s: RGBD) -> None:
    assert np.all(s.depth[~s.valid] == 0) and np.all(s.depth[s.valid] > 0)
    assert s.rgb.shape[:2] == s.depth.shape == s.valid.shape == s.mask.shape


def source_of(s: RGBD, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The (row, col) each output pixel came from, read from the rgb code."""
    return s.rgb[..., 0].astype(np.int64), s.rgb[..., 1].astype(np.int64)


def test_from_arrays_checks_and_zeroes_invalid():
    depth = np.array([[1.0, np.nan], [-1.0, np.inf]], np.float32)
    s = RGBD.from_arrays(np.zeros((2, 2, 3), np.uint8), depth)
    assert s.valid.tolist() == [[True, False], [False, False]] and s.depth[0, 1] == 0
    with pytest.raises(ValueError, match=r"depth \(3, 2\) does not match rgb \(2, 2\)"):
        RGBD.from_arrays(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2), np.float32))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(2, 40), w=st.integers(2, 40))
def test_flip_twice_is_identity(h: int, w: int):
    s = coded(h, w)
    once, twice = flip(s), flip(flip(s))
    for key in ("rgb", "depth", "valid", "mask", "K"):
        np.testing.assert_array_equal(getattr(twice, key), getattr(s, key))
    np.testing.assert_array_equal(once.depth[:, 0], s.depth[:, -1])
    assert once.K[0, 2] == pytest.approx(w - 1 - s.K[0, 2])


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(4, 40),
    w=st.integers(4, 40),
    ch=st.integers(1, 50),
    cw=st.integers(1, 50),
    seed=st.integers(0, 10_000),
)
def test_random_crop_keeps_correspondences_and_pads_as_invalid(h, w, ch, cw, seed):
    s = coded(h, w, seed=seed)
    out = RandomCrop((ch, cw), fill=(0, 0, 255), seed=seed)(s)
    assert out.shape == (ch, cw)
    assert_consistent(out)
    pad = out.rgb[..., 2] == 255
    r, c = source_of(out, w)
    inside = ~pad
    np.testing.assert_array_equal(out.depth[inside], s.depth[r[inside], c[inside]])
    np.testing.assert_array_equal(out.mask[inside], s.mask[r[inside], c[inside]])
    assert not out.valid[pad].any() and np.all(out.mask[pad] == 255)
    # K moves with the window: pixel (r, c) of the source is pixel (r - y0, c - x0) here
    if inside.any():
        y, x = np.argwhere(inside)[0]
        assert out.K[0, 2] - x == pytest.approx(s.K[0, 2] - c[y, x])
        assert out.K[1, 2] - y == pytest.approx(s.K[1, 2] - r[y, x])


@pytest.mark.parametrize("factor", [0.5, 0.77, 1.0, 1.6, 2.0])
def test_resize_never_blends_invalid_depth_and_keeps_alignment(factor: float):
    s, cell_rgb, cell_depth = blocks(48, 64)
    out = resize(s, factor)
    assert out.shape == (round(48 * factor), round(64 * factor))
    assert_consistent(out)
    valid_in = set(np.unique(s.depth[s.valid]).tolist())
    assert set(np.unique(out.depth[out.valid]).tolist()) <= valid_in  # values copied, not mixed
    # where the bilinear RGB is exactly one cell's colour, depth and mask are that cell's
    code = out.rgb[..., 0].astype(np.int64) * 256 + out.rgb[..., 1]
    lookup = {int(a) * 256 + int(b): i for i, (a, b, _) in enumerate(cell_rgb)}
    ids = np.array([lookup.get(int(v), -1) for v in code.ravel()]).reshape(code.shape)
    exact = ids >= 0
    assert exact.mean() > 0.5
    np.testing.assert_array_equal(out.depth[exact], cell_depth[ids[exact]])
    np.testing.assert_array_equal(out.mask[exact], (ids[exact] % 5).astype(np.uint8))


def test_resize_scales_intrinsics_consistently():
    s = coded(30, 40)
    out = resize(s, 2.0)
    assert out.K[0, 0] == pytest.approx(200.0)
    # the principal point stays on the same scene point: pixel centre c -> (c + 0.5) * 2 - 0.5
    assert out.K[0, 2] == pytest.approx((s.K[0, 2] + 0.5) * 2 - 0.5)


def test_colour_jitter_touches_rgb_only():
    s = coded(20, 30)
    out = ColorJitter(0.4, 0.4, 0.4, 0.1, seed=1)(s)
    assert not np.array_equal(out.rgb, s.rgb)
    for key in ("depth", "valid", "mask", "K"):
        np.testing.assert_array_equal(getattr(out, key), getattr(s, key))


def test_depth_noise_grows_with_depth_squared_and_keeps_holes():
    rgb = np.zeros((100, 100, 3), np.uint8)
    depth = np.full((100, 100), 0.5, np.float32)
    depth[50:] = 3.0
    depth[::7, ::7] = 0
    s = RGBD.from_arrays(rgb, depth)
    out = RandomDepthNoise(DepthNoise(sigma_coeff=0.004, hole_count=(0, 0)), seed=0)(s)
    assert_consistent(RGBD(out.rgb, out.depth, out.valid, np.zeros((100, 100), np.uint8)))
    assert not out.valid[::7, ::7].any()
    near = (out.depth - s.depth)[:50][out.valid[:50]].std()
    far = (out.depth - s.depth)[50:][out.valid[50:]].std()
    assert far / near == pytest.approx(36.0, rel=0.2)  # (3.0 / 0.5)^2


def test_depth_dropout_only_removes_depth():
    s = coded(40, 60, hole_p=0.05)
    holes = DepthNoise(sigma_coeff=0.0, hole_count=(3, 3), hole_radius=(0.08, 0.15), dropout=0.01)
    out = RandomDepthNoise(holes, seed=2)(s)
    assert out.valid.sum() < s.valid.sum()
    assert not np.any(out.valid & ~s.valid)
    np.testing.assert_array_equal(out.depth[out.valid], s.depth[out.valid])
    assert np.all(out.depth[~out.valid] == 0)
    np.testing.assert_array_equal(out.rgb, s.rgb)


def test_compose_is_deterministic_per_seed_and_keeps_alignment():
    def pipeline(seed: int) -> Compose:
        return Compose(
            [
                HorizontalFlip(),
                RandomScale((0.8, 1.3)),
                RandomCrop((32, 48)),
                ColorJitter(hue=0.0),
                RandomDepthNoise(DepthNoise(flying_prob=0.2)),
            ],
            seed=seed,
        )

    s = coded(40, 60)
    a, b, c = pipeline(5)(s), pipeline(5)(s), pipeline(6)(s)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.array_equal(a.depth, c.depth)
    assert a.shape == (32, 48)
    assert_consistent(a)
