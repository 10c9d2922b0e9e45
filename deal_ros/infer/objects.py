"""Per-class cloud cleaning and 3-D summaries (centroid, oriented bounding box).

For every class id > 0 of a back-projected :class:`~deal_ros.core.cloud.Cloud`
(:func:`deal_ros.core.cloud.backproject`):

1. **Voxel down-sampling** (``voxel_size``): one point per occupied voxel, the mean of its
   points and colours, plus how many image pixels fell into it. numpy in both backends (one
   ``np.unique`` on voxel keys): the per-voxel pixel counts drive step 3 and open3d's
   ``voxel_down_sample`` does not return them (our choice; same grid in both backends).
2. **Statistical outlier removal** (Rusu et al. 2008, as in PCL and open3d): ``d_i`` = mean
   distance of point i to its ``outlier_neighbors`` nearest neighbours; keep
   ``d_i <= mean(d) + outlier_std_ratio * std(d)``. open3d: ``remove_statistical_outlier``
   (exact k-d tree neighbours; the point itself counts as one of the k). numpy: the same
   statistic, neighbours looked up in growing balls of voxel cells, then brute force for the
   few points still short of k (no k-d tree; see :func:`mean_knn_distance`).
3. **Largest cluster** (the mask leaking onto background or a neighbour: the object is the
   cluster holding the most mask pixels; clusters are weighted by pixel counts from step 1,
   not by down-sampled points, which would favour far surfaces). open3d: DBSCAN
   (``cluster_dbscan(eps=cluster_eps, min_points=cluster_min_points)``, noise dropped).
   numpy: connected components of occupied ``cluster_eps`` cells, 26-connected (our
   choice: like DBSCAN with ``min_points`` 1, points closer than ``eps`` always share a
   cluster; clusters under ``cluster_min_points`` points are noise).

Order (our choice): the grid components (cheap: under a millisecond) run once BEFORE step 2
as well, so a leak onto a far surface is cut before the outlier statistic is computed (it
would cost most of the time there, being sparse, and would inflate the statistic's mean and
spread); step 3 then runs after step 2 with the backend's method, to cut what the removed
outliers were bridging.
4. **Summary**: centroid = mean of the cleaned points; oriented bounding box by PCA (our
   choice in both backends, so boxes do not depend on the backend): axes = eigenvectors of
   the covariance, box x = largest variance, right-handed, each axis' largest component made
   positive; extent = min/max of the points along the axes. Classes left with fewer than
   ``min_points`` points are not reported.

Backend ``auto``: open3d when it imports (lazily, at the first :class:`CloudCleaner`), else
the numpy fallback, which says so when the cleaner is made (one log line, and
:attr:`CloudCleaner.note`);
``backend`` is recorded in every :class:`CleanResult`. Never imports torch or rclpy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from deal_ros.core.cloud import Cloud
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
    "rotation_to_quaternion",
    "voxel_downsample",
]

BACKENDS = ("auto", "open3d", "numpy")
_logger = logging.getLogger(__name__)
_SOR_BALLS = (8, 18)  # squared radii (voxels) of the numpy outlier neighbour search
_DENSE_CELLS = 1 << 22  # up to this many grid cells a dense lookup table is used
_OPEN3D: dict[str, Any] = {}


def load_open3d() -> tuple[Any | None, str]:
    """``(open3d module, "")`` or ``(None, why not)``; imported once, lazily. Any failure
    counts (not installed, a missing system library such as libusb, a numpy ABI mismatch)."""
    if "module" not in _OPEN3D:
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
        name = _name(class_names, class_id)
        objects.append(replace(obj, class_id=class_id, class_name=name, instance_id=instance_id))
    return CleanResult(out_cloud, objects, result.backend, result.timings)


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
    """PCA oriented bounding box of (N, 3) points: ``(center, rotation, size)`` (module
    docstring, step 4)."""
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


# ----------------------------------------------------------------------------- numpy parts
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


def _grid_keys(grid: np.ndarray, dims: np.ndarray) -> np.ndarray:
    return (grid[:, 0] * dims[1] + grid[:, 1]) * dims[2] + grid[:, 2]


def voxel_downsample(points: np.ndarray, colors: np.ndarray | None, size: float) -> Voxels:
    """Mean point (and colour) per occupied voxel of edge ``size``, with counts."""
    origin = points.min(axis=0)
    grid = np.floor((points - origin) / size).astype(np.int64)
    dims = grid.max(axis=0) + 1
    uniq, inverse, counts = np.unique(
        _grid_keys(grid, dims), return_inverse=True, return_counts=True
    )
    m = len(uniq)
    mean = np.empty((m, 3), np.float32)
    for j in range(3):
        mean[:, j] = np.bincount(inverse, weights=points[:, j], minlength=m) / counts
    out_colors = None
    if colors is not None:
        out_colors = np.empty((m, 3), np.uint8)
        for j in range(3):
            total = np.bincount(inverse, weights=colors[:, j], minlength=m)
            out_colors[:, j] = np.rint(total / counts)
    cells = np.stack([uniq // (dims[1] * dims[2]), (uniq // dims[2]) % dims[1], uniq % dims[2]], 1)
    return Voxels(mean, out_colors, counts, cells)


def _offsets(radius: int, half: bool) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    offs = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    offs = offs[np.any(offs != 0, axis=1)]
    if half:  # one of each +-pair: enough for undirected edges
        lex = (offs[:, 0] > 0) | ((offs[:, 0] == 0) & (offs[:, 1] > 0))
        offs = offs[lex | ((offs[:, 0] == 0) & (offs[:, 1] == 0) & (offs[:, 2] > 0))]
    return offs


def _lookup(
    grid: np.ndarray, offsets: np.ndarray, pad: int, index: bool, rows: np.ndarray | None = None
) -> np.ndarray:
    """For cell ``grid[i]`` (distinct cells; ``i`` in ``rows``, default all) and offset ``j``:
    the index of the cell ``grid[i] + offsets[j]`` (-1 if unoccupied) when ``index``, else
    whether it is occupied. (len(rows), len(offsets)); a dense lookup table (``np.take``,
    int32 keys) when small, sorted keys and ``searchsorted`` otherwise."""
    dims = grid.max(axis=0) + 1 + 2 * pad
    cells = int(np.prod(dims))
    dense = cells <= _DENSE_CELLS
    kind = np.int32 if dense else np.int64
    keys = _grid_keys(grid + pad, dims).astype(kind)
    mine = keys if rows is None else keys[rows]
    query = mine[:, None] + _grid_keys(offsets, dims).astype(kind)[None, :]
    if dense:
        if index:
            table = np.full(cells, -1, np.int32)
            table[keys] = np.arange(len(keys), dtype=np.int32)
        else:
            table = np.zeros(cells, bool)
            table[keys] = True
        return np.take(table, query)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    pos = np.minimum(np.searchsorted(sorted_keys, query), len(keys) - 1)
    hit = sorted_keys[pos] == query
    return np.where(hit, order[pos], -1) if index else hit


def _ball_offsets(radius_sq: int) -> np.ndarray:
    """Grid offsets ``o != 0`` with ``|o|^2 <= radius_sq``, nearest first."""
    r = int(np.floor(np.sqrt(radius_sq)))
    offsets = _offsets(r, half=False)
    sq = (offsets**2).sum(axis=1)
    offsets, sq = offsets[sq <= radius_sq], sq[sq <= radius_sq]
    return offsets[np.argsort(sq, kind="stable")]


def _ball_knn(vox: Voxels, rows: np.ndarray, radius_sq: int, k: int):
    """For ``rows``: the sum of the ``k - 1`` smallest distances to other voxel means among
    the voxels within ``sqrt(radius_sq)`` grid cells, and whether ``k - 1`` were found."""
    offsets = _ball_offsets(radius_sq)
    nb = _lookup(vox.grid, offsets, int(np.ceil(np.sqrt(radius_sq))), index=True, rows=rows)
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


def _brute_knn(points: np.ndarray, rows: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
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
    """Per voxel mean: ``d_i`` = sum of the distances to the ``k - 1`` nearest other voxel
    means, over k (as open3d, the point itself is one of its k neighbours, at distance 0).

    The nearest are looked up among the voxels within sqrt(8) cells (92 cells: enough inside
    a surface), then within sqrt(18) cells for points that found too few there (surface
    borders), then by brute force for the rest (corners, isolated points: few). A closer
    point just outside a ball can be missed (the voxel means are not at the cell centres), so
    ``d_i`` can come out slightly larger than the exact k-NN value, never smaller."""
    n = len(vox.points)
    k = min(int(k), n)
    total = np.zeros(n, np.float64)
    if k <= 1:
        return total
    todo = np.arange(n)
    for radius_sq in _SOR_BALLS:
        sums, complete = _ball_knn(vox, todo, radius_sq, k)
        total[todo[complete]] = sums[complete]
        todo = todo[~complete]
        if not len(todo):
            break
    if len(todo):
        total[todo] = _brute_knn(vox.points, todo, k)
    return total / k


def _sor_numpy(vox: Voxels, cfg: CleanConfig) -> np.ndarray:
    """Keep-mask of the statistical outlier removal (module docstring, step 2, numpy)."""
    if len(vox.points) <= 2:
        return np.ones(len(vox.points), bool)
    mean_d = mean_knn_distance(vox, cfg.outlier_neighbors)
    return mean_d <= mean_d.mean() + cfg.outlier_std_ratio * mean_d.std()


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component labels (the smallest member index) of an undirected graph:
    hook the larger root onto the smaller across every edge, then compress paths; repeat."""
    labels = np.arange(n)
    while True:
        la, lb = labels[a], labels[b]
        differ = la != lb
        if not differ.any():
            return labels
        lo, hi = np.minimum(la[differ], lb[differ]), np.maximum(la[differ], lb[differ])
        np.minimum.at(labels, hi, lo)
        while True:
            nxt = labels[labels]
            if np.array_equal(nxt, labels):
                break
            labels = nxt


def _clusters_numpy(points: np.ndarray, cfg: CleanConfig) -> np.ndarray:
    """Cluster label per point (-1 = noise) by 26-connected ``cluster_eps`` cells."""
    grid = np.floor((points - points.min(axis=0)) / cfg.cluster_eps).astype(np.int64)
    dims = grid.max(axis=0) + 1
    uniq, cell_of = np.unique(_grid_keys(grid, dims), return_inverse=True)
    cells = np.stack([uniq // (dims[1] * dims[2]), (uniq // dims[2]) % dims[1], uniq % dims[2]], 1)
    nb = _lookup(cells, _offsets(1, half=True), 1, index=True)
    a, j = np.nonzero(nb >= 0)
    labels = _components(len(cells), a, nb[a, j])[cell_of]
    sizes = np.bincount(labels, minlength=len(cells))
    return np.where(sizes[labels] >= cfg.cluster_min_points, labels, -1)


def _largest(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Keep-mask of the cluster with the largest total weight (noise = -1 never wins)."""
    ok = labels >= 0
    if not ok.any():
        return ok
    support = np.bincount(labels[ok], weights=weights[ok])
    return labels == int(np.argmax(support))


# ----------------------------------------------------------------------------- the cleaner
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
        """The ``rows`` of ``vox`` that the statistical outlier removal keeps."""
        cfg = self.config
        if len(rows) <= cfg.outlier_neighbors:  # too few for the statistic: keep them
            return rows
        if self._o3d is None:
            return rows[_sor_numpy(vox.subset(rows), cfg)]
        o3d = self._o3d
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(vox.points[rows].astype(float)))
        _, index = pcd.remove_statistical_outlier(
            nb_neighbors=int(cfg.outlier_neighbors), std_ratio=float(cfg.outlier_std_ratio)
        )
        return rows[np.asarray(index, dtype=np.int64)]

    def _cluster(self, vox: Voxels, rows: np.ndarray, *, grid: bool) -> np.ndarray:
        """The ``rows`` of ``vox`` in the cluster holding the most pixels (grid components
        when ``grid`` or without open3d, else open3d's DBSCAN)."""
        if not len(rows):
            return rows
        points = vox.points[rows]
        if grid or self._o3d is None:
            labels = _clusters_numpy(points, self.config)
        else:
            pcd = self._o3d.geometry.PointCloud(
                self._o3d.utility.Vector3dVector(points.astype(np.float64))
            )
            eps, min_points = float(self.config.cluster_eps), int(self.config.cluster_min_points)
            labels = np.asarray(pcd.cluster_dbscan(eps, min_points), dtype=np.int64)
        return rows[_largest(labels, vox.counts[rows].astype(np.float64))]

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
            objects.append(self._summary(class_id, cleaned, len(part), class_names))
            timings["summary"] += time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        out = Cloud.concat(parts) if parts else Cloud.empty(cloud.colors is not None)
        return CleanResult(out, objects, self.backend, timings)

    @staticmethod
    def _summary(
        class_id: int, cleaned: Cloud, pixels: int, names: Sequence[str] | Mapping[int, str]
    ) -> ObjectInfo:
        center, rotation, size = oriented_box(cleaned.points)
        return ObjectInfo(
            class_id=class_id,
            class_name=_name(names, class_id),
            centroid=cleaned.points.astype(np.float64).mean(axis=0),
            center=center,
            rotation=rotation,
            size=size,
            point_count=len(cleaned),
            pixel_count=int(pixels),
        )


def _name(names: Sequence[str] | Mapping[int, str], class_id: int) -> str:
    """``names[class_id]`` (a sequence by id, background first, or a mapping), or
    ``class_<id>`` when it has none."""
    if isinstance(names, Mapping):
        return str(names.get(class_id, f"class_{class_id}"))
    return str(names[class_id]) if class_id < len(names) else f"class_{class_id}"
