"""Clusters of points as connected components of occupied grid cells (numpy, no DBSCAN).

The numpy stand-in for open3d's DBSCAN in the cloud cleaning (our choice):

1. put the points in cells of edge ``eps`` (:func:`deal_ros.core.neighbour_grid.cell_coordinates`);
2. link every occupied cell to each of its 26 occupied neighbours
   (:func:`~deal_ros.core.neighbour_grid.neighbour_index` over the 13 offsets of
   ``cube_offsets(1, half=True)``: each undirected edge once);
3. label the connected components of that graph (:func:`connected_components`);
4. a point takes its cell's label; a cluster of fewer than ``min_points`` points is noise (-1).

Like DBSCAN with ``min_points`` 1, two points closer than ``eps`` always share a cluster
(they lie in the same or in neighbouring cells); unlike DBSCAN, points up to ``2 * sqrt(3) *
eps`` apart may be linked too, and a thin bridge of points joins two clusters (single
linkage). :func:`largest_cluster` then picks the cluster of the largest total weight.
"""

from __future__ import annotations

import numpy as np

from deal_ros.core.neighbour_grid import (
    cell_coordinates,
    cell_keys,
    cells_of_keys,
    cube_offsets,
    neighbour_index,
)

__all__ = ["connected_components", "grid_clusters", "largest_cluster"]


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` nodes (the smallest node index in its component) of
    the undirected graph with edges ``a[e] - b[e]``.

    Label propagation without a Python loop over edges: across every edge whose two ends
    still differ, hook the larger label onto the smaller (``np.minimum.at``), then follow
    labels to their roots until nothing changes (path compression); repeat until every edge
    has one label on both ends."""
    labels = np.arange(n)
    while True:
        la, lb = labels[a], labels[b]
        differ = la != lb
        if not differ.any():
            return labels
        lo, hi = np.minimum(la[differ], lb[differ]), np.maximum(la[differ], lb[differ])
        np.minimum.at(labels, hi, lo)
        while True:
            roots = labels[labels]
            if np.array_equal(roots, labels):
                break
            labels = roots


def grid_clusters(points: np.ndarray, eps: float, min_points: int) -> np.ndarray:
    """Cluster label of each (N, 3) point, -1 for noise (steps 1-4 of the module
    docstring); labels are cell indices, not 0..n-1."""
    cells = cell_coordinates(points, eps)
    dims = cells.max(axis=0) + 1
    keys, cell_of = np.unique(cell_keys(cells, dims), return_inverse=True)
    occupied = cells_of_keys(keys, dims)
    nb = neighbour_index(occupied, cube_offsets(1, half=True), 1)
    a, j = np.nonzero(nb >= 0)
    labels = connected_components(len(occupied), a, nb[a, j])[cell_of]
    sizes = np.bincount(labels, minlength=len(occupied))
    return np.where(sizes[labels] >= min_points, labels, -1)


def largest_cluster(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Keep-mask of the points of the cluster with the largest total ``weights`` (noise, -1,
    never wins; all False when every point is noise)."""
    clustered = labels >= 0
    if not clustered.any():
        return clustered
    support = np.bincount(labels[clustered], weights=weights[clustered])
    return labels == int(np.argmax(support))
