"""PLY export of recorded episodes and of single frames (``deal episodes export --format ply``,
``deal infer --cloud``)."""

from __future__ import annotations

import numpy as np
import pytest

from deal_ros.core.cloud_cleaner import CleanConfig, CloudCleaner
from deal_ros.core.ply import read_ply
from deal_ros.data.sample import Sample
from deal_ros.episodes.store import Episode
from deal_ros.errors import DealError
from deal_ros.infer.cloud_export import export_episode_ply, write_frame_ply

from fixtures_data import write_episode


def _expected_points(depth_m: np.ndarray, f: float = 100.0) -> np.ndarray:
    """The fixture's camera_info: fx = fy = 100, principal point at the image centre."""
    h, w = depth_m.shape
    v, u = np.nonzero(depth_m > 0)
    z = depth_m[v, u]
    return np.stack([(u - (w - 1) / 2) * z / f, (v - (h - 1) / 2) * z / f, z], 1)


def test_episode_export_writes_one_coloured_ply_per_frame(tmp_path):
    (tmp_path / "episodes").mkdir()
    written = write_episode(tmp_path / "episodes", "mug-1", ["mug"], n=3, size=(12, 16))
    episode = Episode(written.root)
    ticks: list[int] = []
    summary = export_episode_ply(
        episode.frames(depth_min_m=None, depth_max_m=None),
        tmp_path / "ply",
        class_names=["background", *episode.labels],
        progress=ticks.append,
    )
    assert summary.written == 3 and len(ticks) == 3 and summary.skipped == {}
    assert [p.name for p in summary.files] == [
        f"{i:06d}_{stamp}.ply" for i, stamp in enumerate(written.ids)
    ]
    for path, depth, rgb in zip(summary.files, written.depth_m, written.rgb):
        data = read_ply(path)
        want = _expected_points(depth)
        np.testing.assert_allclose(data.cloud.points, want, rtol=1e-6, atol=1e-7)
        valid = depth > 0
        np.testing.assert_array_equal(data.cloud.colors, rgb[valid])
        assert not data.cloud.class_ids.any()  # no mask: the whole scene as class 0
        assert data.class_names == {0: "background", 1: "mug"}
        assert any(c.startswith("stamp_ns ") for c in data.comments)
    assert summary.points == sum(int((d > 0).sum()) for d in written.depth_m)
    assert "3 PLY files" in summary.line()


def test_frame_ply_with_a_mask_and_cleaning(tmp_path):
    h, w = 48, 64
    depth = np.full((h, w), 2.0, np.float32)
    depth[10:30, 20:44] = 0.5
    mask = np.zeros((h, w), np.uint8)
    mask[8:32, 18:46] = 1  # leaks one ring of pixels onto the wall at 2 m
    mask[40:, :] = 255  # ignore: never written
    k = np.array([[50.0, 0, (w - 1) / 2], [0, 50.0, (h - 1) / 2], [0, 0, 1]])
    sample = Sample(
        rgb=np.full((h, w, 3), 90, np.uint8),
        labels=np.ones(1, np.float32),
        depth=depth,
        valid=depth > 0,
        meta={"K": k, "stamp_ns": 7},
    )
    cleaner = CloudCleaner(backend="numpy")
    cleaner.config = CleanConfig(min_points=5, cluster_eps=0.05)
    out = write_frame_ply(
        tmp_path / "a" / "f_cloud.ply",
        sample,
        mask,
        class_names=["background", "mug"],
        cleaner=cleaner,
        include_background=True,
    )
    data = read_ply(out.path)
    objects = data.cloud.subset(data.cloud.class_ids == 1)
    assert len(objects) == out.objects[0].point_count > 0
    assert objects.points[:, 2].max() < 0.6  # the leak onto the wall was cut
    assert (data.cloud.class_ids == 0).sum() == (mask == 0).sum()  # background kept, raw
    assert 255 not in data.cloud.class_ids
    assert out.backend == "numpy" and out.objects[0].class_name == "mug"
    assert "stamp_ns 7" in data.comments


def test_frames_without_intrinsics_are_skipped_then_refused(tmp_path):
    sample = Sample(
        rgb=np.zeros((4, 4, 3), np.uint8),
        labels=np.ones(1, np.float32),
        depth=np.ones((4, 4), np.float32),
    )
    lines: list[str] = []
    with pytest.raises(DealError, match=r"nothing written \(frame has no camera_info / K"):
        export_episode_ply([sample, sample], tmp_path / "out", log=lines.append)
    assert len(lines) == 1  # one line per reason, not per frame
    no_depth = Sample(rgb=np.zeros((4, 4, 3), np.uint8), labels=np.ones(1, np.float32))
    with pytest.raises(DealError, match="frame has no depth"):
        export_episode_ply([no_depth], tmp_path / "out")
