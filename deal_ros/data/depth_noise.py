"""RealSense-like depth corruption: augmentation and DEAL robustness runs (one implementation).

Model (our choice; the DEAL paper reports robustness to depth noise but gives no noise model):
- Axial Gaussian noise growing with the square of the distance, as for active stereo:
  z' = z + e, e ~ N(0, (sigma_coeff * z^2)^2) (z in metres; D4xx cameras are around
  0.001-0.003 /m). Pixels pushed to z' <= 0 become invalid.
- Holes: ``hole_count`` (drawn in [low, high]) random ellipses with radius r = U(hole_radius)
  x min(H, W) and axes r x U(0.5, 1.5) each, set invalid; plus i.i.d. pixel dropout with
  probability ``dropout``.
- Flying pixels (optional): at a depth discontinuity (|z_i - z_j| > flying_jump * z_i with a
  4-neighbour j), a pixel is replaced with probability ``flying_prob`` by the mix
  t z_i + (1 - t) z_j, t ~ U(0, 1) (the mixed-pixel artefact of depth cameras).
Invalid input pixels (0, NaN, inf) stay invalid.

``DepthNoise(...)(depth, rng)`` corrupts arrays (numpy or torch, any leading dims);
``DepthNoise.apply(depth, valid, rng)`` is the per-map step, also run by
:class:`deal_ros.data.transforms.RandomDepthNoise` on paired RGB-D samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check_range(name: str, lo_hi: tuple[float, float]) -> None:
    lo, hi = lo_hi
    if not 0 <= lo <= hi:
        raise ValueError(f"DepthNoise {name}: expected 0 <= low <= high, got {lo_hi}")


@dataclass
class DepthNoise:
    """The depth noise model of the module docstring, as a callable:
    ``DepthNoise(...)(depth, rng)`` -> noisy copy (numpy or torch, as given).

    ``depth``: (H, W) or (..., H, W) float metres. ``rng``: a ``numpy.random.Generator``, an
    int seed, or None (fresh entropy). Invalid output pixels hold ``invalid_value`` (0.0, the
    RealSense convention).
    """

    sigma_coeff: float = 0.002
    hole_count: tuple[int, int] = (0, 3)
    hole_radius: tuple[float, float] = (0.02, 0.08)  # fractions of min(H, W)
    dropout: float = 0.0
    flying_prob: float = 0.0
    flying_jump: float = 0.05
    invalid_value: float = 0.0

    def __post_init__(self) -> None:
        if self.sigma_coeff < 0:
            raise ValueError(f"DepthNoise sigma_coeff: expected >= 0, got {self.sigma_coeff}")
        _check_range("hole_count", self.hole_count)
        _check_range("hole_radius", self.hole_radius)
        for name in ("dropout", "flying_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"DepthNoise {name}: expected a probability in [0, 1], got {p}")

    def __call__(self, depth, rng: np.random.Generator | int | None = None):
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        is_torch = type(depth).__module__.startswith("torch")
        arr = depth.detach().cpu().numpy() if is_torch else np.asarray(depth)
        if arr.ndim < 2 or not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(
                f"DepthNoise: expected float metres of shape (..., H, W), got {arr.dtype} "
                f"{arr.shape}"
            )
        maps = []
        for d in arr.reshape(-1, *arr.shape[-2:]).astype(np.float64):
            noisy, valid = self.apply(d, np.isfinite(d) & (d > 0), rng)
            maps.append(np.where(valid, noisy, self.invalid_value))
        out = np.stack(maps).reshape(arr.shape).astype(arr.dtype)
        if is_torch:
            import torch

            return torch.from_numpy(out).to(depth.device)
        return out

    def apply(
        self, depth: np.ndarray, valid: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One (H, W) map: (noisy depth in float64 with 0 where invalid, new valid mask)."""
        d = np.where(valid, depth, 0.0).astype(np.float64)
        if self.flying_prob > 0:
            d = flying_pixels(d, valid, self.flying_prob, self.flying_jump, rng)
        if self.sigma_coeff > 0:
            d = d + rng.standard_normal(d.shape) * self.sigma_coeff * d * d
        r = np.asarray(self.hole_radius) * min(d.shape)
        valid = valid & (d > 0) & ~hole_mask(d.shape, self.hole_count, (r[0], r[1]), rng)
        if self.dropout > 0:
            valid &= rng.random(d.shape) >= self.dropout
        return np.where(valid, d, 0.0), valid


def hole_mask(
    shape: tuple[int, int],
    count: tuple[int, int],
    radius: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """``count`` (drawn in [low, high]) random ellipses, radius drawn in ``radius`` pixels and
    axes stretched by U(0.5, 1.5) each: True inside."""
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(*radius)
        ry, rx = r * rng.uniform(0.5, 1.5), r * rng.uniform(0.5, 1.5)
        if min(ry, rx) <= 0:
            continue
        y0, y1 = max(0, int(cy - ry)), min(h, int(cy + ry) + 1)
        x0, x1 = max(0, int(cx - rx)), min(w, int(cx + rx) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return mask


def flying_pixels(
    d: np.ndarray, valid: np.ndarray, prob: float, jump: float, rng: np.random.Generator
) -> np.ndarray:
    """Mixed pixels at depth discontinuities (see the module docstring)."""
    out = d.copy()
    for axis in (0, 1):
        for shift in (1, -1):
            nb = np.roll(d, shift, axis=axis)
            nb_valid = np.roll(valid, shift, axis=axis)
            step = valid & nb_valid & (np.abs(d - nb) > jump * d)
            wrapped = [slice(None), slice(None)]
            wrapped[axis] = 0 if shift == 1 else -1
            step[tuple(wrapped)] = False  # np.roll wraps around: no neighbour there
            pick = step & (rng.random(d.shape) < prob)
            t = rng.random(d.shape)
            out = np.where(pick, t * d + (1 - t) * nb, out)
    return out
