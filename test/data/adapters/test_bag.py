"""Episode and plain-bag adapters on real rosbag2 bags (MCAP and sqlite3) written by
rosbags' Writer and by the recorder's EpisodeWriter."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import yaml

from deal_ros.data.adapters.base import DatasetError
from deal_ros.data.registry import build_dataset

from fixtures_data import PERIOD, RS_DEPTH, T0, write_bag, write_episode


def _same_frame(s, truth_rgb, truth_depth_m):
    np.testing.assert_array_equal(s.rgb, truth_rgb)
    assert np.all(s.depth[~s.valid] == 0)
    np.testing.assert_allclose(s.depth[s.valid], truth_depth_m[s.valid], rtol=1e-6)
    assert np.array_equal(s.valid, truth_depth_m > 0)  # mm 0 -> invalid, the rest valid


# ------------------------------------------------------------------ plain bags
@pytest.mark.parametrize(("storage", "depth_encoding"), [("mcap", "16UC1"), ("sqlite3", "32FC1")])
def test_bag_pairs_decodes_and_random_access(tmp_path, storage, depth_encoding):
    w = write_bag(tmp_path / "bag", storage=storage, depth_encoding=depth_encoding)
    ds = build_dataset(f"bag:{w.root}", labels="mug")
    assert ds.classes == ("mug",) and len(ds) == 5  # frame 2 has no depth: not a pair
    assert ds.pairing.dropped_total("no_match", "rgb") == 1
    for i in (4, 0, 3, 1, 2):  # any order
        s = ds[i]
        assert s.meta["stamp_ns"] == w.ids[i] and s.labels.tolist() == [1.0]
        _same_frame(s, w.rgb[i], w.depth_m[i])  # bgr8 -> rgb, 16UC1 mm / 32FC1 NaN -> m
        np.testing.assert_allclose(s.meta["K"][0], [100.0, 0, 7.5])
    clone = pickle.loads(pickle.dumps(ds))  # spawned workers reopen the bag themselves
    np.testing.assert_array_equal(clone[3].rgb, ds[3].rgb)
    if storage == "mcap":
        _forked_child_opens_its_own_reader(ds)
    rgb_only = build_dataset(f"bag:{w.root}", labels="mug", depth_topic="none")
    assert len(rgb_only) == 6 and rgb_only[2].depth is None


def _forked_child_opens_its_own_reader(ds):
    """DataLoader workers are forked with the parent's open reader; sharing its file offset
    would mix reads up, so a child must open its own (and still read the right frame)."""
    parent_pid = ds.access._pid
    assert parent_pid == os.getpid()  # the parent has read frames: its reader is open
    expect = ds[4].depth
    pid = os.fork()
    if pid == 0:  # child: report through the exit code, never return into pytest
        code = 1
        try:
            ok = np.array_equal(ds[4].depth, expect) and ds.access._pid == os.getpid()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ds.access._pid == parent_pid


def test_bag_labels_file_segments(tmp_path):
    w = write_bag(tmp_path / "bag")
    spec = {
        "format": 1,
        "segments": [
            {"start": 0.0, "end": 0.05, "labels": ["mug"]},
            {"start_ns": T0 + 3 * PERIOD, "end_ns": T0 + 4 * PERIOD + 1, "labels": ["box"]},
            {"start": 0.12, "labels": ["mug", "ball"]},
        ],
    }
    (tmp_path / "labels.yaml").write_text(yaml.safe_dump(spec))
    ds = build_dataset(f"bag:{w.root}", labels=str(tmp_path / "labels.yaml"))
    assert ds.classes == ("ball", "box", "mug")
    got = [tuple(ds.classes[j] for j in np.flatnonzero(ds[i].labels)) for i in range(len(ds))]
    # rgb log times 2 ms after the stamps; the bag starts 1 ns after T0 (another topic)
    assert got == [("mug",), ("mug",), ("box",), ("ball", "box", "mug"), ("ball", "mug")]
    spec = {"labels": [], "segments": [{"start": 0.0, "end": 0.05, "labels": ["mug"]}]}
    (tmp_path / "l2.yaml").write_text(yaml.safe_dump(spec))
    ds2 = build_dataset(f"bag:{w.root}", labels=tmp_path / "l2.yaml", classes=["mug", "box"])
    assert ds2.classes == ("mug", "box") and len(ds2) == 5
    assert [ds2[i].labels.tolist() for i in range(5)] == [[1, 0]] * 2 + [[0, 0]] * 3
    only = {"segments": [{"start": 0.0, "end": 0.05, "labels": ["mug"]}]}
    (tmp_path / "l3.yaml").write_text(yaml.safe_dump(only))
    assert len(build_dataset(f"bag:{w.root}", labels=tmp_path / "l3.yaml")) == 2  # rest skipped


def test_bag_errors(tmp_path):
    w = write_bag(tmp_path / "bag", camera_info=False)
    with pytest.raises(DatasetError, match=r"bag '.*nobag': no such file or directory"):
        build_dataset(f"bag:{tmp_path / 'nobag'}", labels="mug")
    with pytest.raises(
        DatasetError,
        match=r"no topic '/cam/rgb' \(rgb\); it holds: "
        r"/camera/camera/aligned_depth",
    ):
        build_dataset(f"bag:{w.root}", labels="mug", rgb_topic="/cam/rgb")
    with pytest.raises(
        DatasetError,
        match=r"label 'box' in labels=box is not in the class "
        r"list; known classes: mug",
    ):
        build_dataset(f"bag:{w.root}", labels="box", classes=["mug"])
    with pytest.raises(DatasetError, match=r"bag labels: file .*missing.yaml does not exist"):
        build_dataset(f"bag:{w.root}", labels=str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"segments": [{"start": 2.0, "end": 1.0, "labels": ["a"]}]}))
    with pytest.raises(DatasetError, match=r"bad.yaml: segments\[0\]: start 2.0 is not before"):
        build_dataset(f"bag:{w.root}", labels=bad)
    bad.write_text(yaml.safe_dump({"label": ["mug"]}))
    with pytest.raises(DatasetError, match=r"bad.yaml: unknown key\(s\) label; expected format"):
        build_dataset(f"bag:{w.root}", labels=bad)
    bad.write_text(yaml.safe_dump({"format": 2, "labels": ["mug"]}))
    with pytest.raises(DatasetError, match=r"format 2 is newer than this deal_ros reads"):
        build_dataset(f"bag:{w.root}", labels=bad)
    w2 = write_bag(tmp_path / "rgbonly", missing_depth=tuple(range(6)), n=6)
    with pytest.raises(
        DatasetError,
        match=r"none of /deal/depth, " + RS_DEPTH + r" holds the "
        r"depth; give depth_topic=.*depth_topic=none",
    ):
        build_dataset(f"bag:{w2.root}", labels="mug")
    unlabelled = build_dataset(f"bag:{w.root}")  # labels=none: for deal infer
    assert unlabelled.classes == () and unlabelled[0].labels.shape == (0,)


# ------------------------------------------------------------------ episodes
def test_episodes_folder_labels_boxes_and_states(tmp_path):
    eps = tmp_path / "episodes"
    eps.mkdir()
    mug = write_episode(
        eps,
        "mug-1",
        ["mug"],
        n=4,
        boxes=[
            {"label": "mug", "x0": 1, "y0": 2, "x1": 5, "y1": 6, "frames": "all"},
            {"label": "mug", "x0": 0, "y0": 0, "x1": 3, "y1": 3, "frames": [T0 + PERIOD]},
        ],
    )
    both = write_episode(eps, "pair-1", ["box", "mug"], n=3, seed=1)
    write_episode(eps, "ball-1", ["ball"], n=2, seed=2, state="interrupted")
    with pytest.warns(UserWarning, match=r"episodes left out: ball-1 \(interrupted\)"):
        ds = build_dataset(str(eps))
    assert ds.classes == ("box", "mug") and len(ds) == 4 + 3  # ball-1 not read
    order = [("pair-1", i) for i in range(3)] + [("mug-1", i) for i in range(4)]
    order = sorted(order, key=lambda t: t[0] != "mug-1")  # episodes in id order: mug-1 first
    for idx, (eid, i) in enumerate(order):
        s = ds[idx]
        truth = mug if eid == "mug-1" else both
        assert s.meta["episode_id"] == eid and s.meta["stamp_ns"] == truth.ids[i]
        _same_frame(s, truth.rgb[i], truth.depth_m[i])
        assert s.labels.tolist() == ([0.0, 1.0] if eid == "mug-1" else [1.0, 1.0])
        assert s.meta["K"].shape == (3, 3)
    assert [len(ds[i].boxes) for i in range(4)] == [1, 2, 1, 1]  # 2nd box on frame 1 only
    assert (ds[1].boxes[1].class_id, ds[1].boxes[1].x1) == (2, 3.0)
    one = build_dataset(f"episodes:{eps / 'pair-1'}", classes=["mug", "box", "cup"])
    assert len(one) == 3 and one.classes == ("mug", "box", "cup")
    assert one[0].labels.tolist() == [1.0, 1.0, 0.0]
    np.testing.assert_array_equal(one[2].rgb, both.rgb[2])


def test_episodes_errors(tmp_path):
    eps = tmp_path / "episodes"
    eps.mkdir()
    write_episode(eps, "mug-1", ["mug"], n=2)
    write_episode(eps, "ball-1", ["ball"], n=2, seed=2, state="interrupted")
    with pytest.raises(
        DatasetError,
        match=r"episode '.*ball-1' is interrupted .*run 'deal "
        r"episodes repair'",
    ):
        build_dataset(str(eps / "ball-1"))
    with pytest.raises(
        DatasetError,
        match=r"label 'mug' in .*mug-1/episode.yaml is not in the "
        r"class list; known classes: box",
    ):
        build_dataset(str(eps / "mug-1"), classes=["box"])
    (eps / "mug-1" / "episode.yaml").write_text("format: 7\nepisode_id: mug-1\nlabels: [mug]\n")
    with pytest.raises(DatasetError, match=r"mug-1/episode.yaml: format 7 is newer"):
        build_dataset(str(eps), states="complete,interrupted")
