"""DepthNoise: RealSense-like corruption used for the DEAL robustness runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deal_ros.losses import DepthNoise


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
