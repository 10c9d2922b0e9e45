"""recover_bag on real bags: a writer process killed with SIGKILL, incomplete pairs, a bag torn
before its first topic; metadata.yaml checked against rosbags and the mcap library."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader

from deal_ros.episodes import mcap_format as fmt
from deal_ros.episodes.mcap_writer import McapBagWriter
from deal_ros.episodes.meta import BAG_TOPICS, EpisodeError
from deal_ros.episodes.repair import dir_bytes, find_mcap, recover_bag

from mcap_fixtures import (
    IMAGE,
    STORE,
    frame_bytes,
    mcap_messages,
    records,
    rosbags_messages,
    stamp_of,
    write_bag,
)
from paths import TEST_DIR

_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {test_dir!r})
    from mcap_fixtures import IMAGE, STORE, frame_bytes, stamp_of
    from deal_ros.episodes.mcap_writer import McapBagWriter
    from deal_ros.episodes.meta import BAG_TOPICS
    writer = McapBagWriter({bag!r}, chunk_bytes=4096).open()
    rgb = writer.add_connection(BAG_TOPICS["rgb"], IMAGE, STORE)
    depth = writer.add_connection(BAG_TOPICS["depth"], IMAGE, STORE)
    for i in range(1_000_000):
        a, b = frame_bytes(i)
        writer.write_group(stamp_of(i), [(rgb, a), (depth, b)])
        if i % 5 == 4:
            writer.flush(sync=True)
            print("durable", i + 1, flush=True)
    """
)


def _metadata_yaml(bag_dir: Path) -> dict:
    return yaml.safe_load((bag_dir / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def _check_consistent(bag_dir: Path, frames: int) -> None:
    """metadata.yaml, the MCAP summary, its embedded metadata and rosbags agree on ``frames``
    complete pairs, frame 0 to frames - 1."""
    meta = _metadata_yaml(bag_dir)
    mcap = find_mcap(bag_dir)
    with mcap.open("rb") as f:
        reader = make_reader(f)
        stats = reader.get_summary().statistics
        embedded = {m.name: m.metadata for m in reader.iter_metadata()}["rosbag2"]
    assert yaml.safe_load(embedded["serialized_metadata"]) == meta
    assert meta["message_count"] == stats.message_count == 2 * frames
    with Reader(bag_dir) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts == {BAG_TOPICS["rgb"]: frames, BAG_TOPICS["depth"]: frames}
    expected = set()
    for i in range(frames):
        rgb, depth = frame_bytes(i)
        expected |= {(BAG_TOPICS["rgb"], stamp_of(i), bytes(rgb))}
        expected |= {(BAG_TOPICS["depth"], stamp_of(i), bytes(depth))}
    assert rosbags_messages(bag_dir) == expected == mcap_messages(mcap)
    if frames:
        assert meta["starting_time"]["nanoseconds_since_epoch"] == stamp_of(0)
        assert meta["duration"]["nanoseconds"] == stamp_of(frames - 1) - stamp_of(0)


def test_a_killed_writer_loses_nothing_it_synced(tmp_path):
    bag = tmp_path / "bag"
    script = _KILLED_WRITER.format(test_dir=str(TEST_DIR), bag=str(bag))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    durable = 0
    try:
        deadline = time.monotonic() + 60
        while durable < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("durable"):
                durable = int(line.split()[1])
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert durable >= 40, "the writer made no progress"
    assert not (bag / "metadata.yaml").exists()  # what a crash leaves: no summary, no yaml
    size = find_mcap(bag).stat().st_size
    report = recover_bag(bag)
    assert report.frames >= durable and report.orphans == 0 and not report.was_valid
    assert report.messages == 2 * report.frames
    assert (report.first_log_ns, report.last_log_ns) == (stamp_of(0), stamp_of(report.frames - 1))
    assert 0 <= report.dropped_bytes < size
    _check_consistent(bag, report.frames)
    before = find_mcap(bag).read_bytes()
    again = recover_bag(bag)
    assert again.was_valid and again.frames == report.frames and again.dropped_bytes == 0
    assert find_mcap(bag).read_bytes() == before  # idempotent


def test_messages_without_a_partner_are_kept_and_counted(tmp_path):
    writer = McapBagWriter(tmp_path / "bag").open()
    rgb = writer.add_connection(BAG_TOPICS["rgb"], IMAGE, STORE)
    depth = writer.add_connection(BAG_TOPICS["depth"], IMAGE, STORE)
    for i in range(6):
        a, b = frame_bytes(i)
        writer.write_group(stamp_of(i), [(rgb, a)] if i == 2 else [(rgb, a), (depth, b)])
    writer.flush(sync=False)
    writer.abandon()
    report = recover_bag(writer.bag_dir)
    assert (report.frames, report.orphans, report.messages) == (5, 1, 11)
    assert report.problem == "" and report.dropped_bytes == 0
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in
              _metadata_yaml(writer.bag_dir)["topics_with_message_count"]}  # fmt: skip
    assert counts == {BAG_TOPICS["rgb"]: 6, BAG_TOPICS["depth"]: 5}


def test_a_bag_torn_before_its_topics_becomes_an_empty_valid_bag(tmp_path):
    writer = write_bag(tmp_path / "bag", frames=3)
    writer.close()
    data = writer.path.read_bytes()
    header_end = records(data)[0][0] + records(data)[0][2]
    writer.path.write_bytes(data[: header_end + 100])  # inside the first schema record
    (writer.bag_dir / "metadata.yaml").unlink()
    report = recover_bag(writer.bag_dir)
    assert report.frames == 0 and report.messages == 0 and report.dropped_bytes == 100
    assert "runs past the end of the file" in report.problem
    _check_consistent(writer.bag_dir, 0)
    with Reader(writer.bag_dir) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {
            BAG_TOPICS["rgb"]: IMAGE,
            BAG_TOPICS["depth"]: IMAGE,
        }


def test_a_torn_tail_is_cut_and_reported(tmp_path):
    writer = write_bag(tmp_path / "bag", frames=6, flush_every=2)
    writer.flush(sync=False)
    writer.abandon()
    data = writer.path.read_bytes()
    last_chunk = max(pos for pos, op, _ in records(data) if op == fmt.OP_CHUNK)
    writer.path.write_bytes(data[: last_chunk + 50])
    seen: list[int] = []
    report = recover_bag(writer.bag_dir, progress=seen.append)
    assert report.frames == 4 and report.dropped_bytes == 50 and report.problem
    assert len(seen) == 2 and seen[-1] == last_chunk  # after each kept chunk group
    _check_consistent(writer.bag_dir, 4)


def test_a_bag_needs_exactly_one_mcap_file(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(EpisodeError, match=r"expected one \.mcap file, found none") as err:
        find_mcap(tmp_path / "none")
    assert str(tmp_path / "none") in str(err.value)
    two = tmp_path / "two"
    two.mkdir()
    (two / "a.mcap").write_bytes(b"")
    (two / "b.mcap").write_bytes(b"")
    with pytest.raises(EpisodeError, match=r"found a\.mcap, b\.mcap"):
        recover_bag(two)
    assert dir_bytes(two) == 0 and dir_bytes(tmp_path / "missing") == 0
    (two / "c").write_bytes(b"12345")
    assert dir_bytes(tmp_path) == 5
