"""One object in 3-D: centroid and oriented bounding box of its cleaned points (numpy).

Oriented bounding box by PCA (our choice, the same whichever cleaning backend ran, so boxes do
not depend on it):

1. centre the points on their mean; covariance ``C = X^T X / n``;
2. axes = the eigenvectors of ``C``, box x along the largest variance, then y, and
   z = x cross y (right-handed); x and y are signed so that their largest component is
   positive (boxes of similar clouds do not flip);
3. extent = min/max of the points along the axes; box centre = the mean plus the axes times
   the middle of that range; size = the full edge lengths.

The orientation is a rotation matrix whose columns are the axes; :func:`rotation_to_quaternion`
gives the ``(x, y, z, w)`` of geometry_msgs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ObjectInfo", "class_name", "oriented_box", "rotation_to_quaternion", "summarise"]


@dataclass
class ObjectInfo:
    """One class (or one instance) in 3-D: ``centroid`` (3,), box ``center`` (3,),
    ``rotation`` (3, 3) whose columns are the box axes, ``size`` (3,) full edge lengths,
    ``point_count`` after cleaning, ``pixel_count`` mask pixels with depth before cleaning,
    ``instance_id`` the instance's id in an instance-id map (0: one object per class)."""

    class_id: int
    class_name: str
    centroid: np.ndarray
    center: np.ndarray
    rotation: np.ndarray
    size: np.ndarray
    point_count: int
    pixel_count: int
    instance_id: int = 0

    @property
    def quaternion(self) -> np.ndarray:
        """The box orientation as ``(x, y, z, w)`` (geometry_msgs order)."""
        return rotation_to_quaternion(self.rotation)


def rotation_to_quaternion(r: np.ndarray) -> np.ndarray:
    """A proper rotation matrix -> unit quaternion ``(x, y, z, w)``, ``w >= 0`` (Shepperd's
    method: the largest of the four diagonal combinations is the pivot)."""
    r = np.asarray(r, dtype=np.float64)
    trace = np.trace(r)
    diag = np.array([r[0, 0], r[1, 1], r[2, 2], trace])
    i = int(np.argmax(diag))
    if i == 3:
        w = np.sqrt(1.0 + trace) / 2
        q = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1], 0.0]) / (4 * w)
        q[3] = w
    else:
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(max(1.0 + r[i, i] - r[j, j] - r[k, k], 0.0)) * 2
        q = np.empty(4)
        q[i] = s / 4
        q[j] = (r[j, i] + r[i, j]) / s
        q[k] = (r[k, i] + r[i, k]) / s
        q[3] = (r[k, j] - r[j, k]) / s
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def oriented_box(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA oriented bounding box of (N, 3) points: ``(center, rotation, size)`` (steps 1-3
    of the module docstring)."""
    pts = np.asarray(points, dtype=np.float64)
    mean = pts.mean(axis=0)
    centred = pts - mean
    cov = centred.T @ centred / max(len(pts), 1)
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues
    axes = vecs[:, ::-1].copy()
    for a in (0, 1):
        if axes[np.argmax(np.abs(axes[:, a])), a] < 0:
            axes[:, a] *= -1
    axes[:, 2] = np.cross(axes[:, 0], axes[:, 1])
    local = centred @ axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    return mean + axes @ ((lo + hi) / 2), axes, hi - lo


def class_name(names: Sequence[str] | Mapping[int, str], class_id: int) -> str:
    """``names[class_id]`` (a sequence by id, background first, or a mapping), or
    ``class_<id>`` when it has none."""
    if isinstance(names, Mapping):
        return str(names.get(class_id, f"class_{class_id}"))
    return str(names[class_id]) if class_id < len(names) else f"class_{class_id}"


def summarise(
    class_id: int, points: np.ndarray, pixels: int, names: Sequence[str] | Mapping[int, str]
) -> ObjectInfo:
    """The :class:`ObjectInfo` of class ``class_id`` from its cleaned (N, 3) ``points``;
    ``pixels``: its mask pixels with depth before cleaning."""
    center, rotation, size = oriented_box(points)
    return ObjectInfo(
        class_id=class_id,
        class_name=class_name(names, class_id),
        centroid=points.astype(np.float64).mean(axis=0),
        center=center,
        rotation=rotation,
        size=size,
        point_count=len(points),
        pixel_count=int(pixels),
    )
