"""Per-class cloud cleaning and 3-D summaries (centroid, oriented bounding box).

For every class id > 0 of a back-projected :class:`~deal_ros.core.cloud.Cloud`
(:func:`deal_ros.core.cloud.backproject`):

1. **Voxel down-sampling** (``voxel_size``, :mod:`deal_ros.core.voxels`): one point per
   occupied voxel, the mean of its points and colours, plus how many image pixels fell into
   it. numpy in both backends: the per-voxel pixel counts drive step 3 and open3d's
   ``voxel_down_sample`` does not return them (our choice; same grid in both backends).
2. **Statistical outlier removal** (Rusu et al. 2008, as in PCL and open3d): ``d_i`` = mean
   distance of point i to its ``outlier_neighbors`` nearest neighbours; keep
   ``d_i <= mean(d) + outlier_std_ratio * std(d)``. open3d: ``remove_statistical_outlier``
   (exact k-d tree neighbours; the point itself counts as one of the k). numpy: the same
   statistic, neighbours looked up in growing balls of voxel cells, then brute force for the
   few points still short of k (:mod:`deal_ros.core.knn_outliers`).
3. **Largest cluster** (the mask leaking onto background or a neighbour: the object is the
   cluster holding the most mask pixels; clusters are weighted by pixel counts from step 1,
   not by down-sampled points, which would favour far surfaces). open3d: DBSCAN
   (``cluster_dbscan(eps=cluster_eps, min_points=cluster_min_points)``, noise dropped).
   numpy: connected components of occupied ``cluster_eps`` cells, 26-connected
   (:mod:`deal_ros.core.grid_clusters`; our choice: like DBSCAN with ``min_points`` 1, points
   closer than ``eps`` always share a cluster; clusters under ``cluster_min_points`` points
   are noise).

Order (our choice): the grid components (cheap: under a millisecond) run once BEFORE step 2
as well, so a leak onto a far surface is cut before the outlier statistic is computed (it
would cost most of the time there, being sparse, and would inflate the statistic's mean and
spread); step 3 then runs after step 2 with the backend's method, to cut what the removed
outliers were bridging.
4. **Summary** (:mod:`deal_ros.core.objects3d`): centroid = mean of the cleaned points;
   oriented bounding box by PCA (the same in both backends). Classes left with fewer than
   ``min_points`` points are not reported.

Backend ``auto``: open3d when it imports (lazily, at the first :class:`CloudCleaner`), else
the numpy fallback, which says so when the cleaner is made (one log line, and
:attr:`CloudCleaner.note`);
``backend`` is recorded in every :class:`CleanResult`. Never imports torch or rclpy.
(Moved here from ``deal_ros.infer.objects``, which stays an alias for one release.)
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from deal_ros.core.cloud import Cloud
from deal_ros.core.grid_clusters import grid_clusters, largest_cluster
from deal_ros.core.knn_outliers import mean_knn_distance, statistical_outlier_keep
from deal_ros.core.objects3d import (
    ObjectInfo,
    class_name,
    oriented_box,
    rotation_to_quaternion,
    summarise,
)
from deal_ros.core.voxels import Voxels, voxel_downsample
from deal_ros.errors import DealError

__all__ = [
    "BACKENDS",
    "CleanConfig",
    "CleanResult",
    "CloudCleaner",
    "ObjectInfo",
    "Voxels",
    "as_instances",
    "load_open3d",
    "mean_knn_distance",
    "oriented_box",
    "preload_libusb",
    "rotation_to_quaternion",
    "voxel_downsample",
]

BACKENDS = ("auto", "open3d", "numpy")
_logger = logging.getLogger(__name__)
_OPEN3D: dict[str, Any] = {}


def preload_libusb() -> str:
    """Load libusb-package's ``libusb-1.0`` into the process with ``RTLD_GLOBAL`` and return
    its path ("" when that package is not installed or its library does not load).

    open3d's wheels link ``libusb-1.0.so.0`` (for RealSense support we never use); a machine
    without the system library (Debian ``libusb-1.0-0``) fails ``import open3d``. The PyPI
    package ``libusb-package`` ships the library without root; once loaded globally, the
    dynamic linker resolves open3d's ``libusb-1.0.so.0`` to it by its soname. Done once."""
    if "libusb" not in _OPEN3D:
        _OPEN3D["libusb"] = ""
        try:
            import libusb_package  # optional: the [cloud] extra and make setup install it

            path = libusb_package.get_library_path()
            if path is not None:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                _OPEN3D["libusb"] = str(path)
        except Exception as exc:  # not installed, or a library that does not load here
            _logger.debug("libusb-package preload skipped: %s", exc)
    return _OPEN3D["libusb"]


def load_open3d() -> tuple[Any | None, str]:
    """``(open3d module, "")`` or ``(None, why not)``; imported once, lazily. Any failure
    counts (not installed, a missing system library such as libusb, a numpy ABI mismatch).
    libusb-package's library is preloaded first when that package is installed
    (:func:`preload_libusb`)."""
    if "module" not in _OPEN3D:
        preload_libusb()
        try:
            import open3d  # optional and heavy (2 s to import): only here

            _OPEN3D.update(module=open3d, reason="")
        except Exception as exc:  # ImportError, OSError from a missing .so, ...
            _OPEN3D.update(module=None, reason=f"{type(exc).__name__}: {exc}")
    return _OPEN3D["module"], _OPEN3D["reason"]


@dataclass(frozen=True)
class CleanConfig:
    """Cleaning parameters (metres; defaults sized for table-top objects seen by a RealSense
    at 0.3-1.5 m, our choice)."""

    voxel_size: float = 0.005
    outlier_neighbors: int = 20
    outlier_std_ratio: float = 2.0
    cluster_eps: float = 0.02
    cluster_min_points: int = 10
    min_points: int = 20
    remove_outliers: bool = True
    largest_cluster: bool = True

    def __post_init__(self) -> None:
        for key in ("voxel_size", "cluster_eps", "outlier_std_ratio"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise DealError(f"cloud cleaning: {key} must be a number > 0, got {value}")
        for key in ("outlier_neighbors", "cluster_min_points", "min_points"):
            if int(getattr(self, key)) < 1:
                raise DealError(f"cloud cleaning: {key} must be >= 1, got {getattr(self, key)}")


@dataclass
class CleanResult:
    """The cleaned points of every class (ids > 0), their summaries, the backend that ran
    and seconds per stage."""

    cloud: Cloud
    objects: list[ObjectInfo]
    backend: str
    timings: dict[str, float] = field(default_factory=dict)


def as_instances(
    result: CleanResult, classes: Sequence[int], class_names: Sequence[str] | Mapping[int, str]
) -> CleanResult:
    """A cleaner's ``result`` on an instance-id map (ids 1..n, ``classes[i - 1]`` the class of
    id i) back in classes: each object keeps its id as ``instance_id`` and takes its
    instance's class id and name; each point takes its instance's class id."""
    lut = np.zeros(len(classes) + 1, dtype=np.uint16)
    lut[1:] = np.asarray(classes, dtype=np.uint16)
    cloud = result.cloud
    ids = np.minimum(cloud.class_ids, len(classes))
    out_cloud = Cloud(cloud.points, lut[ids], cloud.colors)
    objects = []
    for obj in result.objects:  # the cleaner ran on instance ids: its class_id is one
        instance_id = obj.class_id
        class_id = int(lut[min(instance_id, len(classes))])
        name = class_name(class_names, class_id)
        objects.append(replace(obj, class_id=class_id, class_name=name, instance_id=instance_id))
    return CleanResult(out_cloud, objects, result.backend, result.timings)


def _open3d_cloud(o3d: Any, points: np.ndarray) -> Any:
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))


class CloudCleaner:
    """Clean per-class clouds and summarise them (module docstring).

    ``backend``: ``auto`` (open3d if importable, else numpy, said once through ``log``),
    ``open3d`` (a :class:`DealError` naming the import failure when it is not importable) or
    ``numpy``. ``log``: a callable taking one line (default: this module's logger, info)."""

    def __init__(
        self,
        config: CleanConfig | None = None,
        *,
        backend: str = "auto",
        log: Callable[[str], None] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise DealError(f"cloud cleaning: backend {backend!r} is not one of {BACKENDS}")
        self.config = config or CleanConfig()
        self._o3d = None
        self.note = ""
        say = log or _logger.info
        if backend in ("auto", "open3d"):
            self._o3d, reason = load_open3d()
            if self._o3d is None and backend == "open3d":
                raise DealError(
                    f"cloud cleaning: backend 'open3d' asked but open3d does not import "
                    f"({reason}); pip install open3d, or use backend 'numpy'"
                )
            if self._o3d is None:
                self.note = (
                    f"open3d not available ({reason}): using the numpy fallback for outlier "
                    "removal and clustering (voxel-block neighbours, grid connected components)"
                )
                say(self.note)
        self.backend = "open3d" if self._o3d is not None else "numpy"

    # -------------------------------------------------------------- steps
    def _outliers(self, vox: Voxels, rows: np.ndarray) -> np.ndarray:
        """The ``rows`` of ``vox`` that the statistical outlier removal keeps (step 2)."""
        cfg = self.config
        if len(rows) <= cfg.outlier_neighbors:  # too few for the statistic: keep them
            return rows
        if self._o3d is None:
            subset = vox.subset(rows)
            return rows[statistical_outlier_keep(subset, cfg.outlier_neighbors,
                                                 cfg.outlier_std_ratio)]  # fmt: skip
        pcd = _open3d_cloud(self._o3d, vox.points[rows])
        _, index = pcd.remove_statistical_outlier(
            nb_neighbors=int(cfg.outlier_neighbors), std_ratio=float(cfg.outlier_std_ratio)
        )
        return rows[np.asarray(index, dtype=np.int64)]

    def _cluster(self, vox: Voxels, rows: np.ndarray, *, grid: bool) -> np.ndarray:
        """The ``rows`` of ``vox`` in the cluster holding the most pixels (step 3: grid
        components when ``grid`` or without open3d, else open3d's DBSCAN)."""
        if not len(rows):
            return rows
        cfg = self.config
        points = vox.points[rows]
        if grid or self._o3d is None:
            labels = grid_clusters(points, cfg.cluster_eps, cfg.cluster_min_points)
        else:
            pcd = _open3d_cloud(self._o3d, points)
            eps, min_points = float(cfg.cluster_eps), int(cfg.cluster_min_points)
            labels = np.asarray(pcd.cluster_dbscan(eps, min_points), dtype=np.int64)
        return rows[largest_cluster(labels, vox.counts[rows].astype(np.float64))]

    def clean_class(self, cloud: Cloud) -> tuple[Cloud, dict[str, float]]:
        """Steps 1-3 on the points of one class; returns the cleaned cloud and timings."""
        cfg = self.config
        t0 = time.perf_counter()
        vox = voxel_downsample(cloud.points, cloud.colors, cfg.voxel_size)
        t1 = time.perf_counter()
        keep = np.arange(len(vox.points))
        if cfg.largest_cluster:  # cheap cut of far leaks first (module docstring, step 3)
            keep = self._cluster(vox, keep, grid=True)
        if cfg.remove_outliers:
            keep = self._outliers(vox, keep)
        if cfg.largest_cluster:
            keep = self._cluster(vox, keep, grid=False)
        t2 = time.perf_counter()
        class_id = int(cloud.class_ids[0]) if len(cloud) else 0
        colors = None if vox.colors is None else vox.colors[keep]
        out = Cloud(vox.points[keep], np.full(len(keep), class_id, np.uint16), colors)
        return out, {"voxel": t1 - t0, "clean": t2 - t1}

    def __call__(
        self, cloud: Cloud, class_names: Sequence[str] | Mapping[int, str] = ()
    ) -> CleanResult:
        """Clean and summarise every class id > 0 of ``cloud``. ``class_names``: by id (a
        sequence whose index is the id, background first, or a mapping)."""
        started = time.perf_counter()
        timings = {"voxel": 0.0, "clean": 0.0, "summary": 0.0}
        parts, objects = [], []
        for class_id, part in cloud.by_class().items():
            if class_id == 0:
                continue
            cleaned, t = self.clean_class(part)
            for key, value in t.items():
                timings[key] += value
            if len(cleaned) < self.config.min_points:
                continue
            t0 = time.perf_counter()
            parts.append(cleaned)
            objects.append(summarise(class_id, cleaned.points, len(part), class_names))
            timings["summary"] += time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        out = Cloud.concat(parts) if parts else Cloud.empty(cloud.colors is not None)
        return CleanResult(out, objects, self.backend, timings)
