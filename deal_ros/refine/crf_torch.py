"""Torch mean-field dense CRF: the fallback used when pydensecrf2 is not installed.

Model (Krähenbühl & Koltun, NIPS 2011, "Efficient Inference in Fully Connected CRFs with
Gaussian Edge Potentials"), exactly as pydensecrf sets it up for WSSS:

    E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)
    psi_u(x_i = l) = -log p_i(l)                     (clipped at 1e-5, like unary_from_softmax)
    k = w_g exp(-|p_i-p_j|^2 / (2 sxy_g^2))                           (Gaussian / smoothness)
      + w_b exp(-|p_i-p_j|^2 / (2 sxy_b^2) - |I_i-I_j|^2 / (2 srgb^2)) (bilateral / appearance)
    mu = Potts.

Mean-field update (the paper's Algorithm 1, pydensecrf's sign convention where Potts is applied
as a reward -w Q for agreeing labels, equal to the penalty form up to a per-pixel constant):

    Q_0 = softmax(-psi_u)
    Q_{t+1} = softmax(-psi_u + sum_m w_m  D_m^{-1/2} K_m D_m^{-1/2} Q_t)

with D_m = diag(K_m 1): pydensecrf's default NORMALIZE_SYMMETRIC kernel normalisation.

How each kernel is computed here (our choice, not the paper's permutohedral lattice):

* Gaussian kernel: exact, separable, truncated at 3 sigma, zero outside the image (so the
  normalisation D also accounts for the border), as weighted sums of shifted copies.
* Bilateral kernel: a sparse *bilateral grid* in the 5-D feature space
  (x/sxy, y/sxy, r/srgb, g/srgb, b/srgb) (Paris & Durand 2006; Chen et al. 2007).
  Each pixel is splatted with multilinear weights onto the 2^5 = 32 corners of its grid cell,
  the grid is blurred with [1, 2, 1]/4 along each of the 5 axes, and the result is sliced back
  with the same multilinear weights. Splat, blur and slice together have variance
  1/6 + 1/2 + 1/6 = 5/6 cells^2 per axis, so the cell size is sqrt(6/5) feature units: the
  composite kernel is a separable, piecewise-polynomial approximation of the unit-variance
  Gaussian exp(-|f_i - f_j|^2 / 2) — the same kernel the permutohedral lattice approximates
  (the lattice uses d+1 = 6 simplex corners instead of 32 cube corners). Only occupied cells
  are stored (hash by sorting), so memory grows with the pixel count and not with the feature
  ranges: the splat and slice matrices hold 2 x 32 sparse entries per pixel (~0.5 KB per pixel
  kept, ~1 KB per pixel while building: ~0.3 GB at 640x480), plus a handful of (N, K) float32
  buffers; the per-iteration grid buffers are split over classes to stay under ~32 MiB each.
  Mass that the exact separable blur would route through unoccupied cells is dropped, as in
  the permutohedral lattice.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["BilateralGrid", "GaussianFilter2D", "dense_crf_torch"]

_UNARY_CLIP = 1e-5  # pydensecrf.utils.unary_from_softmax default clip
_CHUNK_FLOATS = 1 << 23  # 32 MiB float32 per grid buffer, bounds memory for many classes
_CELL = math.sqrt(6.0 / 5.0)  # grid spacing in feature units, see module docstring


class GaussianFilter2D:
    """Exact separable Gaussian blur (3-sigma truncated, zero outside the image) of pixel-major
    values (H, W, C): a weighted sum of shifted copies per axis (2r+1 taps, r = ceil(3 sigma))."""

    def __init__(self, sigma: float) -> None:
        self.radius = max(1, math.ceil(3.0 * sigma))
        t = torch.arange(-self.radius, self.radius + 1, dtype=torch.float32)
        self.taps = torch.exp(-(t * t) / (2.0 * sigma * sigma)).tolist()

    def _axis(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        n, r = x.shape[dim], self.radius
        pad_shape = list(x.shape)
        pad_shape[dim] = r
        zeros = x.new_zeros(pad_shape)
        padded = torch.cat([zeros, x, zeros], dim=dim)
        out = padded.narrow(dim, 0, n) * self.taps[0]
        for k in range(1, 2 * r + 1):
            out.add_(padded.narrow(dim, k, n), alpha=self.taps[k])
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._axis(self._axis(x, 0), 1)


class BilateralGrid:
    """Sparse multilinear bilateral grid over features f (N, D), in units of the kernel std.

    ``filter(v)`` returns approximately ``sum_j exp(-|f_i - f_j|^2 / 2) v_j`` for v (N, C).

    Built without sorting the N * 2^D (pixel, corner) entries: pixels are first grouped by
    their base cell ("units", a sort of N keys), the 2^D corners of each unit are grouped into
    grid cells (a sort of U * 2^D keys), and the splat matrix is laid out cell by cell from
    those two orders. Its columns index pixels in unit order (``v[perm]``), which keeps the
    sparse products' memory access sequential.
    """

    def __init__(self, features: torch.Tensor) -> None:
        n, d = features.shape
        corners = 2**d
        f = features.to(torch.float64) / _CELL
        base = torch.floor(f)
        frac = (f - base).to(torch.float32)
        base = base.to(torch.int64)
        base = base - base.min(dim=0).values + 1  # one empty cell of padding below
        sizes = base.max(dim=0).values + 3  # and above (corner +1, neighbour +1)
        strides = torch.ones(d, dtype=torch.int64)
        for k in range(d - 2, -1, -1):
            strides[k] = strides[k + 1] * sizes[k + 1]
        if float(strides[0]) * float(sizes[0]) >= 2.0**62:
            raise ValueError(f"bilateral grid too large: sizes {sizes.tolist()}")
        # corner c has bit (d-1-k) of c on axis k: key offsets then grow with c, so the
        # column indices of each slice row come out sorted (a CSR invariant)
        bits = torch.tensor(
            [[(c >> (d - 1 - k)) & 1 for k in range(d)] for c in range(corners)],
            dtype=torch.int64,
        )  # (2^d, d)
        offsets = bits @ strides  # (2^d,), increasing
        weights = torch.ones(n, corners, dtype=torch.float32)
        for k in range(d):
            fk = frac[:, k : k + 1]
            weights = weights * torch.where(bits[:, k].bool()[None, :], fk, 1.0 - fk)
        # level 1: pixels sharing a base cell form a unit; units numbered in sorted order
        perm, unit_sorted, unit_start, unit_keys = _group(base @ strides)
        unit_of_pixel = torch.empty_like(unit_sorted)
        unit_of_pixel[perm] = unit_sorted
        counts = torch.diff(unit_start, append=torch.tensor([n]))
        # level 2: the corners (u, c) of all units, virtual index u * 2^d + c, grouped in cells
        vperm, vcell_sorted, _, uniq = _group((unit_keys[:, None] + offsets).reshape(-1))
        vcell = torch.empty_like(vcell_sorted)
        vcell[vperm] = vcell_sorted
        m = uniq.numel()
        self.num_pixels, self.num_cells = n, m
        self._scale = (math.sqrt(2.0 * math.pi) / _CELL) ** d
        self._perm = perm
        slice_cols = vcell.to(torch.int32).view(-1, corners)[unit_of_pixel].reshape(-1)
        self._slice = _csr_tensor(  # (N, M), rows in pixel order, 2^d entries each
            torch.arange(0, n * corners + 1, corners, dtype=torch.int32),
            slice_cols,
            weights.reshape(-1),
            (n, m),
        )
        self._splat = self._cell_splat(vperm, vcell_sorted, unit_start, counts, weights[perm], m)
        self._neighbours = [
            (self._lookup(uniq, uniq - strides[k]), self._lookup(uniq, uniq + strides[k]))
            for k in range(d)
        ]

    @staticmethod
    def _cell_splat(
        vperm: torch.Tensor,
        vcell_sorted: torch.Tensor,
        unit_start: torch.Tensor,
        counts: torch.Tensor,
        sorted_weights: torch.Tensor,
        m: int,
    ) -> torch.Tensor:
        """(M, N) CSR: row = grid cell, columns = pixels in unit order. The corners (u, c) in
        cell order are expanded into the pixels of their unit u; columns come out ascending
        within each row because units are numbered in pixel-unit order and the sort is stable.
        """
        n, corners = sorted_weights.shape
        unit = torch.div(vperm, corners, rounding_mode="floor")
        corner = vperm - unit * corners
        lengths = counts[unit]  # pixels behind each sorted corner
        seg = torch.repeat_interleave(torch.arange(vperm.numel()), lengths)
        seg_start = torch.cumsum(lengths, 0) - lengths
        cols = unit_start[unit][seg] + (torch.arange(seg.numel()) - seg_start[seg])
        vals = sorted_weights[cols, corner[seg]]
        per_cell = torch.zeros(m, dtype=torch.int64).index_add_(0, vcell_sorted, lengths)
        crow = torch.zeros(m + 1, dtype=torch.int64)
        crow[1:] = torch.cumsum(per_cell, 0)
        return _csr_tensor(crow.to(torch.int32), cols.to(torch.int32), vals, (m, n))

    @staticmethod
    def _lookup(uniq: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Index of each key in the sorted ``uniq``, or len(uniq) (a zero row) if absent."""
        m = uniq.numel()
        pos = torch.searchsorted(uniq, keys).clamp(max=m - 1)
        idx = torch.where(uniq[pos] == keys, pos, torch.full_like(pos, m))
        return torch.cat([idx, torch.tensor([m])])  # the zero row maps to itself

    def filter(self, values: torch.Tensor) -> torch.Tensor:
        """values (N, C) -> (N, C), approximately sum_j exp(-|f_i - f_j|^2 / 2) v_j.
        Channels are filtered in chunks so that no grid buffer exceeds ~_CHUNK_FLOATS floats."""
        step = max(1, _CHUNK_FLOATS // (self.num_cells + 1))
        if values.shape[1] <= step:
            return self._filter(values)
        chunks = values.split(step, dim=1)
        return torch.cat([self._filter(v.contiguous()) for v in chunks], dim=1)

    def _filter(self, values: torch.Tensor) -> torch.Tensor:
        grid = torch.zeros(self.num_cells + 1, values.shape[1], dtype=values.dtype)
        grid[:-1] = self._splat @ values[self._perm]  # the last row stays 0: "absent"
        for lo, hi in self._neighbours:
            blurred = grid.index_select(0, lo).add_(grid.index_select(0, hi)).mul_(0.25)
            grid = blurred.add_(grid, alpha=0.5)
        return (self._slice @ grid[:-1]).mul_(self._scale)


def _group(keys: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Sort ``keys`` (stable). Returns (order, group id of each sorted entry, first sorted
    position of each group, the distinct keys ascending)."""
    sorted_keys, order = torch.sort(keys, stable=True)
    is_new = torch.ones_like(sorted_keys, dtype=torch.bool)
    is_new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    starts = torch.nonzero(is_new).squeeze(1)
    return order, torch.cumsum(is_new, 0) - 1, starts, sorted_keys[starts]


def _csr_tensor(
    crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """A CSR matrix built without torch's "sparse CSR is beta" warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size=size, check_invariants=False)


def _tensor(x: np.ndarray) -> torch.Tensor:
    """torch.from_numpy without its warning on read-only arrays (e.g. np.frombuffer of a
    ROS message's bytes): those are copied."""
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _softmax_rows(x: torch.Tensor) -> torch.Tensor:
    """In-place softmax over the (short) last axis of (N, K): faster than torch.softmax here."""
    x.sub_(x.amax(dim=1, keepdim=True)).exp_()
    return x.div_(x.sum(dim=1, keepdim=True))


def _symmetric(norm: torch.Tensor) -> torch.Tensor:
    return torch.rsqrt(norm.clamp_min(1e-20))


def dense_crf_torch(
    image: np.ndarray,
    probs: np.ndarray,
    *,
    iterations: int,
    gauss_sxy: float,
    gauss_compat: float,
    bilateral_sxy: float,
    bilateral_srgb: float,
    bilateral_compat: float,
) -> np.ndarray:
    """Mean-field inference on validated inputs: image (H,W,3) uint8, probs (K,H,W) float32
    summing to 1 per pixel. Returns Q (K,H,W) float32. See the module docstring."""
    k, h, w = probs.shape
    with torch.no_grad():
        p = _tensor(probs).permute(1, 2, 0).reshape(h * w, k)  # pixel-major (N,K)
        unary = -torch.log(p.clamp_min(_UNARY_CLIP))
        q = torch.softmax(-unary, dim=1)
        messages = []  # (weight, normalised kernel) per pairwise term with a non-zero weight
        if iterations > 0 and gauss_compat > 0:
            messages.append((gauss_compat, _gaussian_message(h, w, k, gauss_sxy)))
        if iterations > 0 and bilateral_compat > 0:
            feats = _bilateral_features(image, bilateral_sxy, bilateral_srgb)
            messages.append((bilateral_compat, _bilateral_message(feats)))
        for _ in range(iterations):
            logits = -unary
            for weight, message in messages:
                logits.add_(message(q), alpha=weight)
            q = _softmax_rows(logits)
        return q.reshape(h, w, k).permute(2, 0, 1).contiguous().numpy()


def _gaussian_message(h: int, w: int, k: int, sxy: float) -> Callable[[Tensor], Tensor]:
    """q (N,K) -> D^-1/2 K D^-1/2 q for the Gaussian (smoothness) kernel."""
    gauss = GaussianFilter2D(sxy)
    norm = _symmetric(gauss(torch.ones(h, w, 1)).reshape(h * w, 1))
    return lambda q: gauss((norm * q).reshape(h, w, k)).reshape(h * w, k).mul_(norm)


def _bilateral_message(features: Tensor) -> Callable[[Tensor], Tensor]:
    """q (N,K) -> D^-1/2 K D^-1/2 q for the bilateral (appearance) kernel."""
    grid = BilateralGrid(features)
    norm = _symmetric(grid.filter(torch.ones(features.shape[0], 1)))
    return lambda q: grid.filter(norm * q).mul_(norm)


def _bilateral_features(image: np.ndarray, sxy: float, srgb: float) -> torch.Tensor:
    """(N, 5) features (x/sxy, y/sxy, r/srgb, g/srgb, b/srgb), pixel-major like pydensecrf."""
    h, w, _ = image.shape
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    rgb = _tensor(image).reshape(-1, 3).to(torch.float32)
    xy = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    return torch.cat([xy / sxy, rgb / srgb], dim=1)
