"""Statistical outlier removal on voxel means, in numpy (no k-d tree).

The statistic (Rusu et al. 2008, as in PCL and open3d's ``remove_statistical_outlier``):
``d_i`` = the mean distance of point i to its k nearest neighbours, the point itself counted
as one of the k (at distance 0, as open3d does); point i is kept when
``d_i <= mean(d) + std_ratio * std(d)``.

The k nearest are searched in three tiers, each for the points the one before left short of
``k - 1`` neighbours:

1. the voxels within ``sqrt(8)`` cells (92 cells: enough inside a surface);
2. the voxels within ``sqrt(18)`` cells (surface borders);
3. brute force over all points (corners, isolated points: few).

A tier looks its cells up with :func:`deal_ros.core.neighbour_grid.neighbour_index`, so it
costs (points x cells of the ball) distances and no sort of the cloud. A closer point just
outside a ball can be missed (voxel means are not at the cell centres), so ``d_i`` can come out
slightly larger than the exact k-NN value, never smaller.
"""

from __future__ import annotations

import numpy as np

from deal_ros.core.neighbour_grid import ball_offsets, neighbour_index
from deal_ros.core.voxels import Voxels

__all__ = ["BALLS", "brute_knn_sums", "mean_knn_distance", "statistical_outlier_keep"]

#: Squared radii (in cells) of tiers 1 and 2 of the neighbour search.
BALLS = (8, 18)


def ball_knn_sums(
    vox: Voxels, rows: np.ndarray, radius_sq: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """For the voxels ``rows``: the sum of the ``k - 1`` smallest distances to other voxel
    means among the voxels within ``sqrt(radius_sq)`` cells, and whether ``k - 1`` were
    found (a (len(rows),) float array and a bool array)."""
    offsets = ball_offsets(radius_sq)
    pad = int(np.ceil(np.sqrt(radius_sq)))
    nb = neighbour_index(vox.grid, offsets, pad, rows=rows)
    missing = nb < 0
    np.maximum(nb, 0, out=nb)
    sq = np.zeros(nb.shape, np.float32)
    for axis in range(3):
        coord = np.ascontiguousarray(vox.points[:, axis])
        delta = np.take(coord, nb)
        delta -= coord[rows, None]
        sq += delta * delta
    sq[missing] = np.inf
    m = min(k - 1, sq.shape[1])
    nearest = np.sqrt(np.partition(sq, m - 1, axis=1)[:, :m]) if m else sq[:, :0]
    complete = (nearest.shape[1] == k - 1) & np.isfinite(nearest).all(axis=1)
    return np.where(np.isfinite(nearest), nearest, 0).sum(axis=1), complete


def brute_knn_sums(points: np.ndarray, rows: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """Exact sum of the ``k - 1`` smallest distances from ``points[rows]`` to the others
    (``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`` in float64 on centred coordinates, the products
    as three outer products: no BLAS, whose threads stall on a busy machine)."""
    pts = points.astype(np.float64)
    pts -= pts.mean(axis=0)
    cols = np.ascontiguousarray(pts.T)
    norms = np.einsum("nc,nc->n", pts, pts)
    out = np.empty(len(rows), np.float64)
    m = min(k - 1, len(points) - 1)
    for start in range(0, len(rows), chunk):
        sel = rows[start : start + chunk]
        sq = np.multiply.outer(pts[sel, 0], cols[0])
        sq += np.multiply.outer(pts[sel, 1], cols[1])
        sq += np.multiply.outer(pts[sel, 2], cols[2])
        sq *= -2.0
        sq += norms[sel, None]
        sq += norms[None, :]
        sq[np.arange(len(sel)), sel] = np.inf  # not itself
        nearest = np.partition(sq, m - 1, axis=1)[:, :m]
        out[start : start + chunk] = np.sqrt(np.maximum(nearest, 0.0)).sum(axis=1)
    return out


def mean_knn_distance(vox: Voxels, k: int) -> np.ndarray:
    """``d_i`` of every voxel mean (module docstring): the sum of the distances to the
    ``k - 1`` nearest other voxel means, over k; all zeros when k <= 1."""
    n = len(vox.points)
    k = min(int(k), n)
    total = np.zeros(n, np.float64)
    if k <= 1:
        return total
    todo = np.arange(n)
    for radius_sq in BALLS:  # tiers 1 and 2
        sums, complete = ball_knn_sums(vox, todo, radius_sq, k)
        total[todo[complete]] = sums[complete]
        todo = todo[~complete]
        if not len(todo):
            break
    if len(todo):  # tier 3
        total[todo] = brute_knn_sums(vox.points, todo, k)
    return total / k


def statistical_outlier_keep(vox: Voxels, neighbours: int, std_ratio: float) -> np.ndarray:
    """Keep-mask of the statistical outlier removal over ``neighbours`` nearest (module
    docstring); two points or fewer are all kept."""
    if len(vox.points) <= 2:
        return np.ones(len(vox.points), bool)
    mean_d = mean_knn_distance(vox, neighbours)
    return mean_d <= mean_d.mean() + std_ratio * mean_d.std()
