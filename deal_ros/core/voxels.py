"""Voxel down-sampling of a point cloud: one point per occupied voxel (numpy).

A voxel is a cell of edge ``size`` (:mod:`deal_ros.core.neighbour_grid`). Each occupied voxel
gives one point: the mean of the points inside it, the rounded mean of their colours, and how
many points fell into it (``counts``: the cloud cleaning weighs clusters by it, so a far
surface, whose pixels are sparse, does not win by its number of voxels). One ``np.unique`` on
the voxel keys and one ``np.bincount`` per coordinate, no loop over points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deal_ros.core.neighbour_grid import cell_coordinates, cell_keys, cells_of_keys

__all__ = ["Voxels", "voxel_downsample"]


@dataclass
class Voxels:
    """Voxel down-sampled points (:func:`voxel_downsample`)."""

    points: np.ndarray  # (M, 3) float32 voxel means
    colors: np.ndarray | None  # (M, 3) uint8
    counts: np.ndarray  # (M,) raw points per voxel
    grid: np.ndarray  # (M, 3) int64 voxel coordinates (from the cloud's minimum)

    def subset(self, rows: np.ndarray) -> Voxels:
        colors = None if self.colors is None else self.colors[rows]
        return Voxels(self.points[rows], colors, self.counts[rows], self.grid[rows])


def voxel_downsample(points: np.ndarray, colors: np.ndarray | None, size: float) -> Voxels:
    """Mean point (and colour) per occupied voxel of edge ``size``, with counts; voxels in
    ascending key order."""
    cells = cell_coordinates(points, size)
    dims = cells.max(axis=0) + 1
    keys, voxel_of, counts = np.unique(
        cell_keys(cells, dims), return_inverse=True, return_counts=True
    )
    m = len(keys)
    means = np.empty((m, 3), np.float32)
    for axis in range(3):
        means[:, axis] = np.bincount(voxel_of, weights=points[:, axis], minlength=m) / counts
    mean_colors = None
    if colors is not None:
        mean_colors = np.empty((m, 3), np.uint8)
        for channel in range(3):
            total = np.bincount(voxel_of, weights=colors[:, channel], minlength=m)
            mean_colors[:, channel] = np.rint(total / counts)
    return Voxels(means, mean_colors, counts, cells_of_keys(keys, dims))
