"""RealSense-like depth corruption for robustness runs (DEAL reports robustness to depth noise).

Model (our choice; the DEAL paper gives no noise model):
- Axial Gaussian noise growing with the square of the distance, as for active stereo:
  sigma(d) = sigma_coeff * d^2 (d in metres; D4xx cameras are around 0.001-0.003 /m).
- Dropout holes: ``hole_count`` random discs (radius a fraction of min(H, W)) set invalid,
  plus optional i.i.d. pixel dropout ``dropout``.
- Optional flying pixels: at a depth discontinuity (|d_i - d_j| > flying_jump * d_i with a
  4-neighbour j), a pixel is replaced with probability ``flying_prob`` by a random mix
  t d_i + (1 - t) d_j, t ~ U(0, 1) (the mixed-pixel artefact of depth cameras).
Invalid input pixels (0, NaN, inf) stay invalid; every invalid pixel is written as
``invalid_value`` (0.0, the RealSense convention).
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
    """Callable transform: ``DepthNoise(...)(depth, rng)`` -> noisy copy (numpy or torch).

    ``depth``: (H, W) or (..., H, W) float metres. ``rng``: a ``numpy.random.Generator``, an
    int seed, or None (fresh entropy).
    """

    sigma_coeff: float = 0.002
    hole_count: tuple[int, int] = (0, 3)
    hole_radius: tuple[float, float] = (0.02, 0.08)
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
        flat = arr.reshape(-1, *arr.shape[-2:])
        out = np.stack([self._one(d.astype(np.float64), rng) for d in flat])
        out = out.reshape(arr.shape).astype(arr.dtype)
        if is_torch:
            import torch

            return torch.from_numpy(out).to(depth.device)
        return out

    def _one(self, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        valid = np.isfinite(d) & (d > 0)
        d = np.where(valid, d, 0.0)
        if self.flying_prob > 0:
            d = self._flying(d, valid, rng)
        noisy = d + rng.standard_normal(d.shape) * self.sigma_coeff * d * d
        valid &= noisy > 0
        valid &= ~self._holes(d.shape, rng)
        if self.dropout > 0:
            valid &= rng.random(d.shape) >= self.dropout
        return np.where(valid, noisy, self.invalid_value)

    def _holes(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        h, w = shape
        mask = np.zeros(shape, dtype=bool)
        n = int(rng.integers(self.hole_count[0], self.hole_count[1] + 1))
        yy, xx = np.mgrid[0:h, 0:w]
        for _ in range(n):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            r = rng.uniform(*self.hole_radius) * min(h, w)
            ry, rx = r * rng.uniform(0.5, 1.5), r * rng.uniform(0.5, 1.5)  # ellipse
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        return mask

    def _flying(self, d: np.ndarray, valid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = d.copy()
        for axis in (0, 1):
            for shift in (1, -1):
                nb = np.roll(d, shift, axis=axis)
                nb_valid = np.roll(valid, shift, axis=axis)
                jump = valid & nb_valid & (np.abs(d - nb) > self.flying_jump * d)
                wrapped = [slice(None), slice(None)]
                wrapped[axis] = 0 if shift == 1 else -1
                jump[tuple(wrapped)] = False  # np.roll wraps around: no neighbour there
                pick = jump & (rng.random(d.shape) < self.flying_prob)
                t = rng.random(d.shape)
                out = np.where(pick, t * d + (1 - t) * nb, out)
        return out
