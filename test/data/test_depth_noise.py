"""DepthNoise: RealSense-like depth corruption (augmentation and the DEAL robustness runs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deal_ros.data.depth_noise import DepthNoise


def test_noise_grows_with_depth_squared():
    depth = np.ones((2, 200, 200), dtype=np.float64)
    depth[1] = 2.0
    out = DepthNoise(sigma_coeff=0.004, hole_count=(0, 0))(depth, 0)
    s1, s2 = np.std(out[0] - 1.0), np.std(out[1] - 2.0)
    assert s1 == pytest.approx(0.004, rel=0.05) and s2 / s1 == pytest.approx(4.0, rel=0.08)


def test_holes_dropout_and_invalid_input():
    depth = np.full((120, 160), 1.5, dtype=np.float32)
    depth[:10] = 0.0
    depth[10:20] = np.nan
    noise = DepthNoise(sigma_coeff=0.0, hole_count=(2, 2), hole_radius=(0.1, 0.1), dropout=0.05)
    out = noise(depth, 1)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert (out[:20] == 0).all()  # invalid stays invalid, written as 0
    lost = (out[20:] == 0).mean()
    assert 0.05 < lost < 0.5  # holes + 5 % dropout
    assert np.array_equal(out[out > 0], np.full((out > 0).sum(), 1.5, dtype=np.float32))
    assert np.array_equal(noise(depth, 1), out)  # seeded: reproducible


def test_flying_pixels_only_at_discontinuities():
    depth = np.full((40, 40), 2.0)
    depth[:, 20:] = 1.0
    out = DepthNoise(sigma_coeff=0.0, hole_count=(0, 0), flying_prob=1.0)(depth, 2)
    changed = np.argwhere(out != depth)
    assert len(changed) > 0 and set(changed[:, 1]) <= {19, 20}
    assert (
        (out[changed[:, 0], changed[:, 1]] > 1.0) & (out[changed[:, 0], changed[:, 1]] < 2.0)
    ).all()


def test_torch_in_torch_out_and_bad_input():
    t = torch.full((1, 8, 8), 1.0)
    out = DepthNoise(hole_count=(0, 0))(t, 3)
    assert isinstance(out, torch.Tensor) and out.shape == t.shape
    with pytest.raises(ValueError, match="float metres"):
        DepthNoise()(np.ones((4, 4), dtype=np.uint16), 0)
    with pytest.raises(ValueError, match="dropout"):
        DepthNoise(dropout=2.0)


def test_rgbd_transform_runs_the_same_model():
    from deal_ros.data.transforms import RGBD, RandomDepthNoise

    depth = np.full((60, 80), 2.0, dtype=np.float32)
    depth[:, 40:] = 1.0
    depth[::5, ::5] = 0.0
    s = RGBD.from_arrays(np.zeros((60, 80, 3), np.uint8), depth, mask=np.ones((60, 80), np.uint8))
    noise = DepthNoise(sigma_coeff=0.003, hole_count=(2, 2), dropout=0.02, flying_prob=0.5)
    out = RandomDepthNoise(noise, seed=5)(s)
    np.testing.assert_array_equal(out.depth, noise(depth, np.random.default_rng(5)))
    assert np.array_equal(out.valid, out.depth > 0) and not out.valid[::5, ::5].any()
    assert (s.valid & ~out.valid).sum() > 0 and out.depth.dtype == np.float32
    np.testing.assert_array_equal(out.mask, s.mask)
    empty = DepthNoise(sigma_coeff=0.0, hole_count=(3, 3), hole_radius=(0.0, 0.0))
    np.testing.assert_array_equal(empty(depth, 0), depth)  # zero-size holes remove nothing
