"""`deal episodes list|info|repair|export` on real episode folders."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from deal_ros.cli import main
from deal_ros.episodes.meta import load_meta, save_meta
from deal_ros.episodes.store import EpisodeStore

from recorder_driver import serialized_pair

NS = 1_000_000_000
BASE = 1_700_000_000 * NS


def _episode(store: EpisodeStore, name: str, n: int, close: bool = True):
    writer = store.create(["mug"], name=name, sync_interval_s=1e-4)
    for i in range(n):
        stamp = BASE + i * NS // 30
        writer.write_pair(stamp, *serialized_pair(i, 24, 32, stamp))
    writer.update_counts(
        {"no_match": 3},
        invalid={"size": 1},
        depth_valid_fraction=0.94,
        size={"height": 24, "width": 32},
        encodings={"rgb": "rgb8", "depth": "16UC1"},
    )
    return writer.close() if close else writer


def _interrupt(writer) -> None:
    """What a kill -9 leaves: the process's descriptors close (lock gone), no summary."""
    writer._abandon()


def test_list_info_export(tmp_path, capsys):
    store = EpisodeStore(tmp_path)
    _episode(store, "mug-a", 9)
    broken = tmp_path / "junk"
    broken.mkdir()
    (broken / "episode.yaml").write_text("format: [")
    assert main(["episodes", "list", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["id", "labels", "frames", "duration", "size", "state"]
    assert out[1].split()[:5] == ["junk", "?", "?", "?", "?"] and "unreadable" in out[1]
    assert out[2].split()[:4] == ["mug-a", "mug", "9", "0.3"] and out[2].endswith("complete")

    assert main(["episodes", "info", str(tmp_path / "mug-a")]) == 0
    info = capsys.readouterr().out
    assert "frames    9  at 30.0 Hz" in info
    assert "dropped   no_match=3  (invalid: size=1)" in info
    assert "valid pixels 94.0% on average" in info
    assert "images    32x24  rgb rgb8, depth 16UC1" in info
    assert main(["episodes", "info", str(tmp_path / "mug-a"), "--json", "--depth"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bag"]["pairs"] == 9 and report["bag"]["rates"]["mean_rate_hz"] == 30.0
    assert report["depth"]["valid_fraction_min"] == 0.9375  # the 2-pixel zero band of 32

    out_dir = tmp_path / "png"
    args = ["episodes", "export", str(tmp_path / "mug-a"), "--out", str(out_dir), "--every", "4"]
    assert main(args) == 0
    assert "exported 3 frames" in capsys.readouterr().out
    rgb = np.asarray(Image.open(out_dir / "rgb" / "000001.png"))
    depth = np.asarray(Image.open(out_dir / "depth" / "000001.png"))
    assert rgb.shape == (24, 32, 3) and np.all(rgb[..., 0] == 4)
    assert depth.dtype == np.uint16 and depth[0, 0] == 0 and depth[0, 5] == 504
    rows = (out_dir / "frames.csv").read_text().splitlines()
    assert rows[0] == "n,pair_index,stamp_ns,rgb,depth_mm" and len(rows) == 4


def test_repair_command_and_errors(tmp_path, capsys):
    store = EpisodeStore(tmp_path)
    _episode(store, "fine", 5)
    writer = _episode(store, "crashed", 12, close=False)
    mcap = next((writer.directory / "bag").glob("*.mcap"))
    _interrupt(writer)
    with mcap.open("r+b") as f:  # tear the last record, as a kill mid-write does
        f.truncate(mcap.stat().st_size - 7)
    meta = load_meta(writer.directory)
    meta.frames = 12
    save_meta(writer.directory, meta)
    assert main(["episodes", "list", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "interrupted" in listing and "run 'deal episodes repair" in listing
    assert main(["episodes", "info", str(writer.directory)]) == 0
    assert "NOT CLOSED" in capsys.readouterr().out

    assert main(["episodes", "repair", str(tmp_path)]) == 0  # the whole directory
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0]
        == "crashed: repaired, kept 11 frames (episode.yaml said 12 before), "
        + (lines[0].split("before), ")[1])
    )
    assert lines[1] == "fine: already valid (5 frames), nothing to do"
    assert load_meta(writer.directory).state == "repaired"

    assert main(["episodes", "info", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"deal episodes: '{tmp_path}' is not an episode directory (no episode.yaml)"
    assert main(["episodes", "list", str(tmp_path / "none")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_export_ply_needs_camera_info_and_writes_clouds(tmp_path, capsys):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CameraInfo

    from deal_ros.core.ply import read_ply

    store = EpisodeStore(tmp_path)
    _episode(store, "no-info", 3)
    assert main(["episodes", "export", str(tmp_path / "no-info"), "--format", "ply"]) == 1
    assert "nothing written" in capsys.readouterr().err

    writer = store.create(["mug"], name="with-info", sync_interval_s=1e-4)
    info = CameraInfo(height=24, width=32)
    info.k = [20.0, 0.0, 16.0, 0.0, 20.0, 12.0, 0.0, 0.0, 1.0]
    for i in range(3):
        stamp = BASE + i * NS // 30
        writer.write_pair(stamp, *serialized_pair(i, 24, 32, stamp), serialize_message(info))
    writer.close()
    out_dir = tmp_path / "ply"
    args = ["episodes", "export", str(tmp_path / "with-info"), "--format", "ply", "--out"]
    assert main([*args, str(out_dir)]) == 0
    assert "3 PLY files" in capsys.readouterr().out
    ply = read_ply(sorted(out_dir.glob("*.ply"))[1])
    valid_pixels = 24 * (32 - 2)  # the fixture's depth has a 2-pixel invalid band
    assert len(ply.cloud.points) == valid_pixels
    np.testing.assert_allclose(ply.cloud.points[:, 2], (500 + 1) / 1000, atol=1e-6)  # 501 mm


def test_boxes_add_list_clear_and_refuse_bad_ones(tmp_path, capsys):
    from deal_ros.data.registry import build_dataset

    store = EpisodeStore(tmp_path)
    _episode(store, "mug-a", 3)
    ep = str(tmp_path / "mug-a")
    assert main(["episodes", "boxes", ep]) == 0
    assert "mug-a: 0 box(es), labels ['mug']" in capsys.readouterr().out
    assert main(["episodes", "boxes", ep, "--add", "mug", "2,3,12,20"]) == 0
    stamp = BASE + NS // 30  # the second frame
    assert main(["episodes", "boxes", ep, "--add", "mug", "0,0,5,5", "--frames", str(stamp)]) == 0
    out = capsys.readouterr().out
    assert "[0] mug: 2,3,12,20 (all)" in out and "[1] mug: 0,0,5,5 (1 frame(s))" in out
    assert load_meta(ep).boxes[1] == {
        "label": "mug", "x0": 0.0, "y0": 0.0, "x1": 5.0, "y1": 5.0, "frames": [stamp]
    }  # fmt: skip
    ds = build_dataset(ep)
    assert [len(ds[i].boxes) for i in range(3)] == [1, 2, 1]
    bad = {
        ("--add", "cup", "1,1,4,4"): "boxes[2]: label 'cup' is not one of the episode's ['mug']",
        ("--add", "mug", "1,1,4"): "--add mug 1,1,4: expected X0,Y0,X1,Y1",
        ("--add", "mug", "5,1,4,4"): "boxes[2]: box (5, 1, 4, 4) is empty or not finite",
        ("--add", "mug", "a,1,4,4"): "boxes[2]: x0, y0, x1, y1 must be numbers",
        ("--add", "mug", "1,1,4,4", "--frames", "first"): "boxes[2]: frames must be 'all'",
    }
    for argv, text in bad.items():
        assert main(["episodes", "boxes", ep, *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert text in err and "\n" not in err, err
    assert len(load_meta(ep).boxes) == 2  # nothing was written by the refused calls
    assert main(["episodes", "boxes", ep, "--clear"]) == 0
    assert load_meta(ep).boxes == [] and "0 box(es)" in capsys.readouterr().out
    writer = _episode(store, "mug-live", 1, close=False)
    try:
        live = str(tmp_path / "mug-live")
        assert main(["episodes", "boxes", live, "--add", "mug", "0,0,4,4"]) == 1
        assert "is being recorded" in capsys.readouterr().err
    finally:
        writer.close()


def _bare(store: EpisodeStore, name: str, n: int):
    """An episode whose writer was killed before any metadata checkpoint: episode.yaml has
    no size, encodings or depth fraction (the issue's 'encodings: {}' after repair)."""
    writer = store.create(["mug"], name=name, sync_interval_s=1e-4)
    for i in range(n):
        stamp = BASE + i * NS // 30
        writer.write_pair(stamp, *serialized_pair(i, 24, 32, stamp))
    writer.checkpoint()
    _interrupt(writer)
    return writer.directory


def test_repair_restores_size_encodings_and_depth_validity(tmp_path, capsys):
    path = _bare(EpisodeStore(tmp_path), "bare", 7)
    before = load_meta(path)
    assert before.encodings == {} and before.depth_valid_fraction is None
    assert main(["episodes", "repair", str(path)]) == 0
    meta = load_meta(path)
    assert meta.state == "repaired" and meta.frames == 7
    assert meta.size == {"height": 24, "width": 32}
    assert meta.encodings == {"rgb": "rgb8", "depth": "16UC1"}
    assert meta.depth_valid_fraction == 0.9375  # the driver's zero band: 2 of 32 columns
    capsys.readouterr()
    assert main(["episodes", "info", str(path)]) == 0
    info = capsys.readouterr().out
    assert "images    32x24  rgb rgb8, depth 16UC1" in info and "valid pixels 93.8%" in info
    assert "crc       ok (7 chunks checked)" in info


def test_info_names_chunks_failing_their_crc(tmp_path, capsys):
    from mcap_fixtures import chunk_groups

    store = EpisodeStore(tmp_path)
    _episode(store, "flip", 6)
    mcap = next((tmp_path / "flip" / "bag").glob("*.mcap"))
    end = chunk_groups(mcap)[2][0]
    data = bytearray(mcap.read_bytes())
    data[end - 2000] ^= 0xFF  # pixel bytes of the third chunk
    mcap.write_bytes(bytes(data))
    assert main(["episodes", "info", str(tmp_path / "flip")]) == 0
    info = capsys.readouterr().out
    assert "crc       1 of 6 chunks FAIL their CRC" in info
    assert "their 1 frames are skipped by every reader" in info
    assert main(["episodes", "info", "--quick", str(tmp_path / "flip")]) == 0
    assert "crc       not checked (--quick)" in capsys.readouterr().out


def test_repair_bag_makes_a_torn_plain_bag_valid(tmp_path, capsys):
    from mcap_fixtures import chunk_groups, rosbags_bag, rosbags_messages

    bag = tmp_path / "plain"
    rosbags_bag(bag)
    mcap = next(bag.glob("*.mcap"))
    groups = chunk_groups(mcap)
    mcap.write_bytes(mcap.read_bytes()[: groups[1][0] + 5000])  # two whole chunks kept
    assert main(["episodes", "repair", "--bag", str(bag)]) == 0
    out = capsys.readouterr().out
    kept = groups[0][1] | groups[1][1]
    assert out.startswith(f"{bag}: repaired, kept {len(kept)} messages (")
    assert {(t, lt) for t, lt, _ in rosbags_messages(bag)} == kept
    assert main(["episodes", "repair", "--bag", str(bag)]) == 0
    assert "already valid" in capsys.readouterr().out
    from mcap_fixtures import records

    empty = tmp_path / "empty"
    empty.mkdir()
    pos, _op, n = records(mcap.read_bytes())[0]  # magic and header, no topic yet
    (empty / "empty.mcap").write_bytes(mcap.read_bytes()[: pos + n])
    assert main(["episodes", "repair", "--bag", str(empty)]) == 1
    assert "torn before its first topic" in capsys.readouterr().err


def test_commands_that_write_into_an_episode_refuse_links_leading_outside(tmp_path, capsys):
    """repair, boxes --add/--clear and export never write through a link leading outside the
    episode folder (repair truncated and rewrote the linked file); the recorder's store
    creates episodes in fresh folders only. Links inside the folder are fine."""
    store = EpisodeStore(tmp_path / "episodes")
    outside = tmp_path / "precious"
    outside.mkdir()
    victim = outside / "data.mcap"
    path = _bare(store, "linked", 4)
    mcap = next((path / "bag").glob("*.mcap"))
    victim.write_bytes(mcap.read_bytes())
    mcap.unlink()
    mcap.symlink_to(victim)
    before = victim.read_bytes()
    assert main(["episodes", "repair", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"repair: '{mcap}' is a link to '{victim}', outside the episode folder" in err
    assert victim.read_bytes() == before  # not truncated, not rewritten

    target = outside / "episode.yaml"
    target.write_text((path / "episode.yaml").read_text())
    (path / "episode.yaml").unlink()
    (path / "episode.yaml").symlink_to(target)
    yaml_before = target.read_text()
    assert main(["episodes", "boxes", str(path), "--add", "mug", "1,2,10,12"]) == 1
    assert "boxes: '" in capsys.readouterr().err and target.read_text() == yaml_before
    assert main(["episodes", "boxes", str(path), "--clear"]) == 1
    capsys.readouterr()

    good = store.create(["mug"], name="good")
    good.write_pair(BASE, *serialized_pair(0, 24, 32, BASE))
    good.close()
    export = tmp_path / "episodes" / "good" / "export-png"
    export.mkdir()
    (export / "rgb").symlink_to(outside)  # export-png/rgb -> a folder elsewhere
    assert main(["episodes", "export", str(good.directory)]) == 1
    assert "export: '" in capsys.readouterr().err
    assert sorted(outside.iterdir()) == [victim, target]  # nothing written there
    (export / "rgb").unlink()
    (export / "frames").mkdir()
    (export / "rgb").symlink_to(export / "frames")  # a link that stays inside: followed
    assert main(["episodes", "export", str(good.directory)]) == 0
    assert (export / "frames" / "000000.png").is_file()
    capsys.readouterr()

    (tmp_path / "episodes" / "next").symlink_to(outside)  # the recorder's next episode id
    import pytest

    from deal_ros.episodes.meta import EpisodeError

    with pytest.raises(EpisodeError, match="escapes"):
        store.create(["mug"], name="next")
    assert sorted(outside.iterdir()) == [victim, target]
