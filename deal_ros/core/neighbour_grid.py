"""Integer cell grids over 3-D points, and neighbour look-ups between occupied cells (numpy).

The numpy parts of the cloud cleaning (:mod:`deal_ros.core.cloud_cleaner`) work on cells, not
on points: a point ``p`` lies in the cell ``floor((p - origin) / size)``, three non-negative
integers (:func:`cell_coordinates`). A cell is turned into one integer key, its row-major index
in a box of ``dims`` cells (:func:`cell_keys`, inverted by :func:`cells_of_keys`), so that sets
of cells are plain integer arrays that ``np.unique``, ``np.take`` and ``np.searchsorted`` handle.

Neighbours are found by offsets, not by a tree: for an offset ``o`` (an integer 3-vector), the
neighbour of cell ``c`` is the cell ``c + o`` when it is occupied. :func:`cube_offsets` gives
the 26 (radius 1) or more cells around a cell, :func:`ball_offsets` those within a radius,
nearest first. :func:`neighbour_index` then answers, for every occupied cell and every offset
at once, "which occupied cell is there, if any":

1. shift all cells by ``pad`` (the largest offset component), so that ``c + o`` never leaves
   the box of ``dims = max(c) + 1 + 2 * pad`` cells: keys stay unique and non-negative, and
   ``key(c + o) = key(c) + key(o)`` (keys are linear in the cell);
2. query keys ``key(c) + key(o)``, a (cells, offsets) array;
3. look the queries up: in a dense table of the whole box (``np.take``; index or -1) while
   it has at most :data:`DENSE_CELLS` cells, else by binary search in the sorted keys of the
   occupied cells (``np.searchsorted``; memory of the occupied cells only).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DENSE_CELLS",
    "ball_offsets",
    "cell_coordinates",
    "cell_keys",
    "cells_of_keys",
    "cube_offsets",
    "neighbour_index",
]

#: Boxes of up to this many cells are looked up in a dense table (16 MiB of int32), larger
#: ones by binary search in the sorted keys (read at call time: tests lower it).
DENSE_CELLS = 1 << 22


def cell_coordinates(points: np.ndarray, size: float) -> np.ndarray:
    """(N, 3) int64 cell of each point in a grid of edge ``size`` whose origin is the
    points' minimum corner (so every coordinate is >= 0)."""
    return np.floor((points - points.min(axis=0)) / size).astype(np.int64)


def cell_keys(cells: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """Row-major key of each (N, 3) cell in a box of ``dims`` = (nx, ny, nz) cells."""
    return (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]


def cells_of_keys(keys: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """The (N, 3) cells of row-major ``keys`` (the inverse of :func:`cell_keys`)."""
    plane = dims[1] * dims[2]
    return np.stack([keys // plane, (keys // dims[2]) % dims[1], keys % dims[2]], 1)


def cube_offsets(radius: int, half: bool) -> np.ndarray:
    """The offsets ``o != 0`` with every component in ``[-radius, radius]``: (n, 3) int.

    ``half``: only one of each pair ``o, -o`` (the lexicographically positive one), enough to
    list every undirected edge between neighbouring cells once."""
    r = np.arange(-radius, radius + 1)
    offsets = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    offsets = offsets[np.any(offsets != 0, axis=1)]
    if half:
        x, y, z = offsets.T
        positive = (x > 0) | ((x == 0) & (y > 0)) | ((x == 0) & (y == 0) & (z > 0))
        offsets = offsets[positive]
    return offsets


def ball_offsets(radius_sq: int) -> np.ndarray:
    """The offsets ``o != 0`` with ``|o|^2 <= radius_sq``, nearest first (ties in
    :func:`cube_offsets` order)."""
    offsets = cube_offsets(int(np.floor(np.sqrt(radius_sq))), half=False)
    sq = (offsets**2).sum(axis=1)
    offsets, sq = offsets[sq <= radius_sq], sq[sq <= radius_sq]
    return offsets[np.argsort(sq, kind="stable")]


def neighbour_index(
    cells: np.ndarray, offsets: np.ndarray, pad: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """For distinct occupied ``cells`` (N, 3) >= 0: ``out[i, j]`` = the index of the cell
    ``cells[rows[i]] + offsets[j]`` in ``cells``, or -1 when it is not occupied.

    ``rows``: the cells to ask for (default: all); ``pad``: at least the largest
    ``|offsets|`` component. Steps 1-3 of the module docstring."""
    dims = cells.max(axis=0) + 1 + 2 * pad
    box = int(np.prod(dims))
    dense = box <= DENSE_CELLS
    kind = np.int32 if dense else np.int64
    keys = cell_keys(cells + pad, dims).astype(kind)
    asked = keys if rows is None else keys[rows]
    query = asked[:, None] + cell_keys(offsets, dims).astype(kind)[None, :]
    if dense:
        table = np.full(box, -1, np.int32)
        table[keys] = np.arange(len(keys), dtype=np.int32)
        return np.take(table, query)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    pos = np.minimum(np.searchsorted(sorted_keys, query), len(keys) - 1)
    return np.where(sorted_keys[pos] == query, order[pos], -1)
