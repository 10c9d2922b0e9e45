"""A RealSense-like depth sensor and a noisy colour sensor for the synthetic scenes (numpy only).

Depth, from the noise-free depth z (metres) of each pixel (our model, loosely after the D400
series' datasheet behaviour; the constants are choices):

* noise: z + N(0, (c * z^2)^2) per pixel plus a smooth low-frequency offset of the same scale
  (stereo depth error grows with the square of the distance);
* occlusion shadow: stereo with the projector / second imager to one side leaves no depth on
  the background just LEFT of a nearer surface: pixel u is invalid if some pixel u + s
  (1 <= s <= S) has a disparity larger by more than s (disparity = f * baseline / z);
  ``shadow_baseline`` (default ``baseline``) sets the offset of the IR projector whose shadow
  this is: a wider offset, a wider hole beside every object;
* edge holes: pixels at depth discontinuities drop out with probability ``edge_drop``;
* blob holes: smooth noise above a threshold (dark, shiny or texture-less patches);
* glare holes: where the colour renderer saw a strong specular highlight;
* salt holes, and out-of-range (z < ``min_range`` or z > ``max_range``) set to 0;
* quantised to millimetres (what a 16UC1 stream carries), 0 = invalid, float32 metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass
class DepthSensor:
    """Parameters of the simulated depth camera (see the module docstring)."""

    noise_coeff: float = 0.002  # sigma = noise_coeff * z^2 (metres)
    baseline: float = 0.05  # metres
    edge_threshold: float = 0.03  # relative depth jump that counts as an edge
    edge_drop: float = 0.5
    blob_fraction: float = 0.02  # target fraction of blob holes
    glare_drop: float = 0.7
    salt: float = 0.002
    min_range: float = 0.2
    max_range: float = 4.0
    max_shadow_px: int = 24
    shadow_baseline: float | None = None  # IR projector offset (metres); None: ``baseline``

    def measure(
        self, z: Array, f: float, rng: np.random.Generator, glare: Array | None = None
    ) -> Array:
        """Noisy, holed, mm-quantised depth (float32 metres, 0 = invalid) from true depth z."""
        h, w = z.shape
        sigma = self.noise_coeff * z * z
        noisy = z + sigma * rng.standard_normal((h, w), dtype=np.float32)
        noisy += sigma * 1.5 * (smooth_field(rng, h, w, 40.0) - 0.5)
        invalid = self.occlusion_shadow(z, f)
        uniform = rng.random((h, w), dtype=np.float32)
        invalid |= self.edges(z) & (uniform < self.edge_drop)
        if self.blob_fraction > 0:
            blobs = smooth_field(rng, h, w, 12.0)
            invalid |= blobs > np.quantile(blobs[::7, ::7], 1.0 - self.blob_fraction)
        if glare is not None:
            invalid |= glare & (np.roll(uniform, 1) < self.glare_drop)
        invalid |= np.roll(uniform, 2, axis=0) < self.salt
        invalid |= (z < self.min_range) | (z > self.max_range) | ~np.isfinite(z)
        out = np.round(np.where(invalid, 0.0, noisy) * 1000.0) / 1000.0
        return np.maximum(out, 0.0).astype(np.float32)

    def occlusion_shadow(self, z: Array, f: float) -> Array:
        """Pixels hidden from the second view: a nearer pixel within s columns to the right
        whose disparity exceeds this one's by more than s."""
        base = self.baseline if self.shadow_baseline is None else self.shadow_baseline
        disp = f * base / np.maximum(z, 1e-3)
        shadow = np.zeros(z.shape, bool)
        for s in range(1, min(self.max_shadow_px, z.shape[1] - 1) + 1):
            shadow[:, :-s] |= (disp[:, s:] - disp[:, :-s]) > s
        return shadow

    def edges(self, z: Array) -> Array:
        """Pixels next to a relative depth jump larger than ``edge_threshold``."""
        rel = np.zeros(z.shape, bool)
        jump_x = np.abs(np.diff(z, axis=1)) > self.edge_threshold * np.minimum(z[:, 1:], z[:, :-1])
        jump_y = np.abs(np.diff(z, axis=0)) > self.edge_threshold * np.minimum(z[1:], z[:-1])
        rel[:, 1:] |= jump_x
        rel[:, :-1] |= jump_x
        rel[1:] |= jump_y
        rel[:-1] |= jump_y
        return rel


def smooth_field(rng: np.random.Generator, h: int, w: int, cell: float) -> Array:
    """(h, w) value noise in [0, 1] with one random value per ``cell`` pixels, smoothstep-
    interpolated separably (rows of the small grid first, then columns)."""
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    i, fy = _interp_index(h, cell, gh)
    j, fx = _interp_index(w, cell, gw)
    rows = grid[i] * (1 - fy)[:, None] + grid[i + 1] * fy[:, None]  # (h, gw)
    return rows[:, j] * (1 - fx) + rows[:, j + 1] * fx


def _interp_index(n: int, cell: float, m: int) -> tuple[Array, Array]:
    x = np.arange(n, dtype=np.float32) / cell + 0.5
    i = np.minimum(x.astype(np.int64), m - 2)
    f = x - i
    return i, (f * f * (3 - 2 * f)).astype(np.float32)


def colour_sensor(linear_rgb: Array, rng: np.random.Generator, noise_std: float) -> Array:
    """Shaded RGB in [0, 1+] -> Gaussian read noise (in 8-bit units) -> clipped uint8."""
    img = np.clip(linear_rgb, 0.0, 1.0) * 255.0
    img += noise_std * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
