"""Our MCAP reader on real bags: a chunk whose CRC fails is skipped and counted (or stops the
read) in bag_io, the episode and bag adapters and random access; a torn plain bag is read up
to its tear with a line naming the repair command; rosbags-written bags read the same as
rosbags reads them."""

from __future__ import annotations

import logging
import shutil

import pytest
from rosbags.rosbag2 import Reader

from deal_ros.data.adapters.base import DatasetError
from deal_ros.data.registry import build_dataset
from deal_ros.episodes.bag_io import BagError, BagFrameReader, FrameTopics, open_bag
from deal_ros.episodes.mcap_reader import REPAIR_COMMAND
from deal_ros.episodes.store import Episode, EpisodeStore

from mcap_fixtures import (
    chunk_groups,
    frame_bytes,
    rosbags_bag,
    stamp_of,
)


def _episode(tmp_path, frames: int = 6) -> Episode:
    """An episode of ``frames`` pairs, one MCAP chunk per pair (a checkpoint after each)."""
    writer = EpisodeStore(tmp_path / "episodes").create(["mug"], name="crc")
    for i in range(frames):
        writer.write_pair(stamp_of(i), *frame_bytes(i))
        writer.checkpoint()
    writer.close()
    return Episode(writer.directory)


def _flip(mcap, chunk: int, back: int = 100) -> None:
    """Flip one byte of pixel data near the end of chunk number ``chunk``."""
    groups = chunk_groups(mcap)
    data = bytearray(mcap.read_bytes())
    start = 0 if chunk == 0 else groups[chunk - 1][0]
    end = start + (groups[chunk][0] - start) // 2  # inside the chunk, before its indexes
    data[end - back] ^= 0x01
    mcap.write_bytes(bytes(data))


def _red(frames) -> list[int]:
    return [int(f.rgb[0, 0, 0]) for f in frames]


def test_a_chunk_failing_its_crc_is_skipped_and_counted(tmp_path, caplog):
    episode = _episode(tmp_path)
    mcap = next(episode.bag_dir.glob("*.mcap"))
    _flip(mcap, 2)
    reader = episode.frames()
    with caplog.at_level(logging.WARNING):
        frames = list(reader)
    assert _red(frames) == [0, 1, 3, 4, 5]  # the frame of the third chunk is left out
    assert reader.skipped == {"crc": 2}  # its rgb and depth messages
    (chunk,) = reader.skipped_chunks
    assert chunk.messages == {"/deal/rgb": 1, "/deal/depth": 1}
    lines = [r.getMessage() for r in caplog.records if "fails its CRC" in r.getMessage()]
    assert len(lines) == 1 and "skipped" in lines[0] and str(episode.bag_dir) in lines[0]
    with pytest.raises(BagError, match="fails its CRC") as err:
        list(episode.frames(strict=True))
    assert "\n" not in str(err.value)
    stop = BagFrameReader(
        episode.bag_dir, FrameTopics("/deal/rgb", "/deal/depth"), pair_by="log_time",
        require_camera_info=False, on_crc="stop",
    )  # fmt: skip
    with pytest.raises(BagError, match="chunk at offset"):
        list(stop)


def test_datasets_never_train_on_a_chunk_failing_its_crc(tmp_path):
    episode = _episode(tmp_path)
    mcap = next(episode.bag_dir.glob("*.mcap"))
    _flip(mcap, 4)
    for spec in (f"episodes:{episode.path}", f"bag:{episode.bag_dir}"):
        ds = build_dataset(spec, **({"labels": "mug"} if spec.startswith("bag") else {}))
        assert len(ds) == 5 and [int(ds[i].rgb[0, 0, 0]) for i in range(5)] == [0, 1, 2, 3, 5]
        assert ds.skipped == {"crc": 2}
        with pytest.raises(DatasetError, match="fails its CRC"):
            build_dataset(spec, on_crc="stop", **({"labels": "mug"} if "bag:" in spec else {}))
    ds = build_dataset(f"episodes:{episode.path}")
    _flip(mcap, 1)  # damaged after indexing: random access checks the CRC again
    with pytest.raises(DatasetError, match="fails its CRC") as err:
        ds[1]
    assert "\n" not in str(err.value)
    assert int(ds[0].rgb[0, 0, 0]) == 0


def test_rosbags_written_bags_read_the_same_through_our_reader(tmp_path):
    bag = tmp_path / "plain"
    rosbags_bag(bag)
    with Reader(bag) as reader:
        theirs = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
    source = open_bag(bag)
    assert source.is_mcap
    ours = [(t, lt, bytes(raw)) for t, lt, raw in source.messages(list(source.topics))]
    source.close()
    assert ours == theirs


def test_a_torn_plain_bag_reads_what_is_readable_and_names_the_repair(tmp_path, caplog):
    bag = tmp_path / "plain"
    rosbags_bag(bag)
    mcap = next(bag.glob("*.mcap"))
    groups = chunk_groups(mcap)
    assert len(groups) >= 3
    torn = tmp_path / "torn"
    torn.mkdir()
    shutil.copy(bag / "metadata.yaml", torn)
    (torn / mcap.name).write_bytes(mcap.read_bytes()[: groups[1][0] + 5000])  # two chunks
    kept = len(groups[0][1] | groups[1][1]) // 2  # pairs in the two whole chunks
    with caplog.at_level(logging.WARNING):
        ds = build_dataset(f"bag:{torn}", labels="mug")
    assert len(ds) == kept and [int(ds[i].rgb[0, 0, 0]) for i in range(kept)] == [*range(kept)]
    (line,) = [r.getMessage() for r in caplog.records if "not closed" in r.getMessage()]
    assert f"'{REPAIR_COMMAND} {torn}' makes it a valid bag" in line
    assert f"reading the {2 * kept} messages of its 2 complete chunks" in line
    assert "\n" not in line
