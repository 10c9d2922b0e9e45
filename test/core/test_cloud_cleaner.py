"""Cloud cleaning and summaries: numpy fallback always, open3d when it imports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from deal_ros.core import cloud_cleaner, grid_clusters, knn_outliers, neighbour_grid
from deal_ros.core.cloud import Cloud, Intrinsics, backproject
from deal_ros.core.cloud_cleaner import CleanConfig, CloudCleaner, load_open3d
from deal_ros.core.objects3d import oriented_box, rotation_to_quaternion
from deal_ros.core.voxels import voxel_downsample
from deal_ros.errors import DealError

HAVE_OPEN3D = load_open3d()[0] is not None
BACKENDS = [
    "numpy",
    pytest.param(
        "open3d", marks=pytest.mark.skipif(not HAVE_OPEN3D, reason="open3d does not import")
    ),
]


def leaking_scene(h: int = 240, w: int = 320, seed: int = 0):
    """A 16 x 12 cm box face at 0.6 m in front of a wall at 1.8 m; its mask also covers a
    ring of wall around it (the leak): 30 % of the mask's pixels, but MORE voxels than the
    object, since far pixels are bigger (a point-count "largest cluster" would keep the
    wall). Noise 1.5 mm."""
    rng = np.random.default_rng(seed)
    intr = Intrinsics(300.0, 300.0, (w - 1) / 2, (h - 1) / 2, w, h)
    v, u = np.mgrid[:h, :w]
    depth = np.full((h, w), 1.8, np.float32)
    box = (np.abs(u - w / 2) < 40) & (np.abs(v - h / 2) < 30)
    depth[box] = 0.6 + 0.0004 * (u[box] - w / 2)  # slightly slanted face
    ring = (np.abs(u - w / 2) < 48) & (np.abs(v - h / 2) < 36) & ~box
    depth += rng.normal(0, 0.0015, depth.shape).astype(np.float32)
    mask = np.zeros((h, w), np.uint8)
    mask[box | ring] = 1
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return depth, mask, rgb, intr, box


@pytest.mark.parametrize("backend", BACKENDS)
def test_largest_cluster_cuts_a_mask_leaking_onto_the_far_background(backend):
    depth, mask, rgb, intr, box = leaking_scene()
    cloud = backproject(depth, intr, mask, rgb=rgb)
    ring_pixels = int(mask.sum() - box.sum())
    assert 0.25 < ring_pixels / mask.sum() < 0.35
    far = cloud.points[:, 2] > 1.2
    cleaner = CloudCleaner(backend=backend)
    # the leak holds more down-sampled points than the object: pixel weighting matters
    vox = voxel_downsample(cloud.points[far], None, cleaner.config.voxel_size)
    near = voxel_downsample(cloud.points[~far], None, cleaner.config.voxel_size)
    assert len(vox.points) > len(near.points)
    result = cleaner(cloud, ["background", "box"])
    assert result.backend == backend
    assert result.cloud.points[:, 2].max() < 0.7  # nothing of the wall is left
    (obj,) = result.objects
    assert (obj.class_id, obj.class_name, obj.pixel_count) == (1, "box", len(cloud))
    assert obj.point_count == len(result.cloud) >= 0.9 * len(near.points)
    np.testing.assert_allclose(obj.centroid, [0.0, 0.0, 0.6], atol=0.005)
    # the face spans 80 x 60 px at 0.6 m with f = 300: 16 x 12 cm, a few mm thick
    np.testing.assert_allclose(obj.size[:2], [0.16, 0.12], atol=0.01)
    assert obj.size[2] < 0.015
    assert result.cloud.colors is not None and set(result.cloud.class_ids) == {1}

    plain = CloudCleaner(CleanConfig(largest_cluster=False), backend=backend)(cloud)
    assert plain.cloud.points[:, 2].max() > 1.7  # without the cluster step the wall stays


@pytest.mark.parametrize("backend", BACKENDS)
def test_statistical_outliers_are_removed(backend):
    rng = np.random.default_rng(1)
    plane = rng.random((40000, 3)) * [0.2, 0.2, 0.0] + [0, 0, 0.5025]  # ~25 per voxel
    plane[:, 2] += rng.normal(0, 0.0005, len(plane))
    stray = np.array([[0.1, 0.1, 0.53], [0.05, 0.15, 0.47], [0.21, 0.02, 0.54]])
    cloud = Cloud(np.r_[plane, stray], 1)
    cfg = CleanConfig(largest_cluster=False)
    n_plane = len(voxel_downsample(cloud.points, None, cfg.voxel_size).points) - 3
    assert n_plane == 40 * 40  # the plane lies mid-voxel: one layer of 5 mm voxels
    kept = CloudCleaner(cfg, backend=backend)(cloud).cloud.points
    assert np.abs(kept[:, 2] - 0.5025).max() < 0.01  # every stray point is gone
    assert len(kept) >= 0.95 * n_plane
    off = CloudCleaner(CleanConfig(largest_cluster=False, remove_outliers=False), backend=backend)
    assert len(off(cloud).cloud) == n_plane + len(stray)


def test_small_classes_are_not_reported_and_background_is_ignored():
    up = np.array([0.0, 0.0, 1.0])
    pts = np.random.default_rng(2).normal(0, 0.01, (200, 3)) + up
    cloud = Cloud(np.r_[pts, pts[:5] + up], np.r_[np.zeros(200), np.full(5, 3)])
    result = CloudCleaner(backend="numpy")(cloud, {3: "cup"})
    assert result.objects == [] and len(result.cloud) == 0  # class 3 too small, 0 skipped


def test_oriented_box_recovers_a_rotated_box():
    rng = np.random.default_rng(3)
    size = np.array([0.3, 0.2, 0.1])
    local = (rng.random((4000, 3)) - 0.5) * size
    local[:, 0] = np.where(rng.random(4000) < 0.5, -0.15, 0.15)  # points on two faces...
    local[::2] = (rng.random((2000, 3)) - 0.5) * size  # ...and inside
    angle = 0.6
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array(
        [[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]]
    )
    centre = np.array([0.1, -0.2, 0.9])
    center, axes, extent = oriented_box(local @ rot.T + centre)
    np.testing.assert_allclose(center, centre, atol=2e-3)
    np.testing.assert_allclose(extent, size, atol=5e-3)
    np.testing.assert_allclose(np.abs(axes.T @ rot), np.eye(3), atol=0.02)  # same axes up to sign
    assert np.isclose(np.linalg.det(axes), 1.0)
    # quaternion (x, y, z, w) -> matrix gives the axes back
    x, y, z, w = rotation_to_quaternion(axes)
    back = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    np.testing.assert_allclose(back, axes, atol=1e-9)
    for r in (np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])):
        q = rotation_to_quaternion(r)  # 180-degree turns: the non-trace pivots
        assert np.isclose(np.linalg.norm(q), 1) and np.isclose(abs(q[np.argmax(np.abs(q))]), 1)


def _installed(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(dist)
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not (_installed("libusb-package") and (_installed("open3d-cpu") or _installed("open3d"))),
    reason="needs open3d and libusb-package installed (make setup installs both)",
)
def test_load_open3d_preloads_libusb_package_so_open3d_imports_without_the_system_library():
    """In a fresh interpreter: load_open3d() maps libusb-package's library into the process
    (RTLD_GLOBAL, before open3d's own libusb-1.0.so.0 is resolved) and open3d imports. With
    both packages installed this must not skip: the open3d tests above depend on it."""
    code = (
        "import json; from deal_ros.core.cloud_cleaner import load_open3d, preload_libusb\n"
        "module, why = load_open3d()\n"
        "maps = [l.split()[-1] for l in open('/proc/self/maps') if 'libusb' in l]\n"
        "print(json.dumps({'ok': module is not None, 'why': why, 'lib': preload_libusb(),\n"
        "                  'maps': sorted(set(maps))}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True)  # fmt: skip
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["ok"], got["why"]
    assert got["lib"].endswith("libusb-1.0.so") and "libusb_package" in got["lib"]
    assert got["lib"] in got["maps"]  # the preloaded library is the one mapped
    assert HAVE_OPEN3D  # so the open3d-parametrised tests of this file ran


def test_without_open3d_the_numpy_path_runs_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "open3d", None)  # what a missing package looks like
    monkeypatch.setattr(cloud_cleaner, "_OPEN3D", {})
    lines: list[str] = []
    cleaner = CloudCleaner(backend="auto", log=lines.append)
    assert cleaner.backend == "numpy"
    assert len(lines) == 1 and "open3d not available" in lines[0] and "numpy" in lines[0]
    assert cleaner.note == lines[0]
    depth, mask, _rgb, intr, _ = leaking_scene(120, 160)
    assert cleaner(backproject(depth, intr, mask), ["bg", "box"]).backend == "numpy"
    with pytest.raises(DealError, match="backend 'open3d' asked but open3d does not import"):
        CloudCleaner(backend="open3d")
    with pytest.raises(DealError, match="backend 'pcl' is not one of"):
        CloudCleaner(backend="pcl")
    numpy_lines: list[str] = []
    CloudCleaner(backend="numpy", log=numpy_lines.append)
    assert numpy_lines == []  # asked for numpy: nothing to say


def test_clean_config_rejects_nonsense():
    with pytest.raises(DealError, match="voxel_size must be a number > 0"):
        CleanConfig(voxel_size=0)
    with pytest.raises(DealError, match="outlier_neighbors must be >= 1"):
        CleanConfig(outlier_neighbors=0)


def test_numpy_components_and_sparse_lookup_agree_with_dense():
    rng = np.random.default_rng(4)
    grid = np.unique(rng.integers(0, 30, (500, 3)), axis=0)
    offs = neighbour_grid.cube_offsets(1, half=True)
    dense = neighbour_grid.neighbour_index(grid, offs, 1)
    old = neighbour_grid.DENSE_CELLS
    try:
        neighbour_grid.DENSE_CELLS = 0  # force the sorted-keys path
        sparse = neighbour_grid.neighbour_index(grid, offs, 1)
    finally:
        neighbour_grid.DENSE_CELLS = old
    np.testing.assert_array_equal(dense, sparse)
    # components: a chain 0-1-2 and 3-4, 5 alone
    labels = grid_clusters.connected_components(6, np.array([2, 1, 4]), np.array([1, 0, 3]))
    assert labels.tolist() == [0, 0, 0, 3, 3, 5]


def test_numpy_outlier_statistic_matches_brute_force_knn():
    rng = np.random.default_rng(5)
    # a tilted, curved surface plus scattered points: every tier of the lookup is used
    uv = rng.random((20000, 2)) * 0.15
    surface = np.c_[uv, 0.6 + 0.3 * uv[:, 0] + 2 * (uv[:, 1] - 0.07) ** 2]
    scattered = rng.random((40, 3)) * [0.15, 0.15, 0.1] + [0, 0, 0.6]
    vox = voxel_downsample(np.r_[surface, scattered], None, 0.005)
    k = 12
    exact = knn_outliers.brute_knn_sums(vox.points, np.arange(len(vox.points)), k) / k
    fast = knn_outliers.mean_knn_distance(vox, k)
    assert (fast >= exact - 1e-7).all()  # a missed neighbour can only make it larger
    assert np.mean(np.isclose(fast, exact, rtol=1e-5)) > 0.98
    assert np.max(fast / exact) < 1.05
    cfg = CleanConfig(outlier_neighbors=k, outlier_std_ratio=1.0)
    want = exact <= exact.mean() + cfg.outlier_std_ratio * exact.std()
    got = knn_outliers.statistical_outlier_keep(vox, cfg.outlier_neighbors, cfg.outlier_std_ratio)
    assert 0 < (~want).sum() < len(want) and np.mean(got == want) > 0.995


@pytest.mark.skipif(not HAVE_OPEN3D, reason="open3d does not import")
def test_numpy_and_open3d_outlier_removal_keep_the_same_points():
    rng = np.random.default_rng(6)
    pts = np.r_[rng.random((30000, 3)) * [0.2, 0.1, 0.0] + [0, 0, 0.7],
                rng.random((30, 3)) * [0.2, 0.1, 0.1] + [0, 0, 0.65]]  # fmt: skip
    cfg = CleanConfig(largest_cluster=False)
    a = CloudCleaner(cfg, backend="numpy").clean_class(Cloud(pts, 1))[0]
    b = CloudCleaner(cfg, backend="open3d").clean_class(Cloud(pts, 1))[0]
    np.testing.assert_array_equal(np.sort(a.points, axis=0), np.sort(b.points, axis=0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_clusters_are_cut_again_after_outliers_bridging_them_are_removed(backend):
    rng = np.random.default_rng(7)
    obj = rng.random((20000, 3)) * [0.1, 0.1, 0] + [0.0, 0.0, 0.6]
    far = rng.random((5000, 3)) * [0.1, 0.1, 0] + [0.17, 0.0, 0.75]
    t = np.linspace(0, 1, 18)[1:-1, None]
    bridge = (1 - t) * [0.1, 0.05, 0.6] + t * [0.17, 0.05, 0.75]  # 1 cm steps: one grid blob
    cloud = Cloud(np.r_[obj, far, bridge], 1)
    result = CloudCleaner(backend=backend)(cloud)
    # the far plane and the bridge are gone (but for a bridge point within 1 cm of the object)
    assert result.cloud.points[:, 2].max() < 0.61 and result.cloud.points[:, 0].max() < 0.105
    np.testing.assert_allclose(result.objects[0].size[:2], [0.1, 0.1], atol=0.012)
    merged = CloudCleaner(CleanConfig(remove_outliers=False), backend=backend)(cloud)
    if backend == "numpy":  # grid components (single linkage): the bridge holds them together
        assert merged.cloud.points[:, 2].max() > 0.74
    else:  # DBSCAN: bridge points have < min_points neighbours, so they never join clusters
        assert merged.cloud.points[:, 2].max() < 0.65
