"""McapBagWriter on real files: read back by rosbags and by the official mcap library, chunking
by frame groups, the metadata, what closes after an error, and the zero-copy contract."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader

from deal_ros import __version__
from deal_ros.episodes.mcap_recover import scan_mcap
from deal_ros.episodes.mcap_writer import McapBagWriter
from deal_ros.episodes.meta import BAG_TOPICS, EpisodeError

from mcap_fixtures import (
    CAMERA_INFO,
    IMAGE,
    STORE,
    chunk_groups,
    frame_bytes,
    info_bytes,
    mcap_messages,
    rosbags_messages,
    stamp_of,
    stream_records,
    write_bag,
)


def _sent(frames: int, info_every: int = 0) -> set[tuple[str, int, bytes]]:
    out = set()
    for i in range(frames):
        rgb, depth = frame_bytes(i)
        out |= {(BAG_TOPICS["rgb"], stamp_of(i), bytes(rgb))}
        out |= {(BAG_TOPICS["depth"], stamp_of(i), bytes(depth))}
        if info_every and i % info_every == 0:
            out.add((BAG_TOPICS["camera_info"], stamp_of(i), bytes(info_bytes(stamp_of(i)))))
    return out


def test_rosbags_and_mcap_read_back_every_message(tmp_path):
    writer = write_bag(tmp_path / "bag", frames=9, info_every=4, chunk_bytes=2000)
    scan = writer.close()
    sent = _sent(9, info_every=4)
    assert rosbags_messages(writer.bag_dir) == sent
    assert mcap_messages(writer.path) == sent
    with Reader(writer.bag_dir) as reader:
        conns = {c.topic: c for c in reader.connections}
        for _conn, _t, raw in reader.messages(connections=[conns[BAG_TOPICS["depth"]]]):
            msg = STORE.deserialize_cdr(raw, IMAGE)
            i = int(msg.data.view(np.uint16)[1]) - 500
            assert msg.encoding == "16UC1" and stamp_of(i) == msg.header.stamp.sec * 10**9 + (
                msg.header.stamp.nanosec
            )
    assert conns[BAG_TOPICS["rgb"]].msgtype == IMAGE
    assert conns[BAG_TOPICS["camera_info"]].msgtype == CAMERA_INFO
    assert conns[BAG_TOPICS["rgb"]].digest == STORE.hash_rihs01(IMAGE)
    assert conns[BAG_TOPICS["rgb"]].ext.offered_qos_profiles == []
    assert scan.finalized and scan.message_count == len(sent)
    assert stream_records(writer.path)[-1] == "Footer"


def test_a_frame_never_spans_two_chunks(tmp_path):
    """Messages of one write_group share a chunk; a chunk is written once the pending groups
    reach chunk_bytes, on flush(), and before a new connection's records."""
    one_frame = sum(len(b) for b in frame_bytes(0)) + 2 * 31  # two message records
    writer = write_bag(tmp_path / "bag", frames=10, chunk_bytes=3 * one_frame - 1)
    writer.close()
    groups = chunk_groups(writer.path)
    assert [len(msgs) for _, msgs in groups] == [6, 6, 6, 2]  # 3 frames a chunk, the rest
    for _end, msgs in groups:  # both messages of each frame in the same chunk
        times = {t for _, t in msgs}
        assert {(BAG_TOPICS["rgb"], t) for t in times} | {
            (BAG_TOPICS["depth"], t) for t in times
        } == msgs
    flushed = write_bag(tmp_path / "flushed", frames=10, flush_every=4)
    flushed.close()
    assert [len(msgs) for _, msgs in chunk_groups(flushed.path)] == [8, 8, 4]
    late = write_bag(tmp_path / "late", frames=6, late_topic_at=2)
    late.close()
    assert [len(msgs) for _, msgs in chunk_groups(late.path)] == [4, 12]  # cut at /late


def test_pending_bytes_and_durable_offset(tmp_path):
    writer = write_bag(tmp_path / "bag", frames=3)
    rgb, depth = frame_bytes(0)
    assert writer.pending_bytes == 3 * (len(rgb) + len(depth) + 2 * 31)
    before = writer.durable
    writer.flush(sync=True)
    assert writer.pending_bytes == 0 and writer.durable == writer.offset > before
    assert writer.path.stat().st_size == writer.offset == writer.state.valid_end
    scan = scan_mcap(writer.path, trusted_until=writer.durable)  # what a crash now leaves
    assert scan.problem == "" and scan.message_count == 6
    writer.close()


def test_metadata_yaml_and_the_embedded_copy(tmp_path):
    writer = write_bag(tmp_path / "bag", frames=4, info_every=2)
    writer.close()
    info = yaml.safe_load((writer.bag_dir / "metadata.yaml").read_text())
    meta = info["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == ["bag.mcap"] and meta["message_count"] == 10
    assert meta["starting_time"]["nanoseconds_since_epoch"] == stamp_of(0)
    assert meta["duration"]["nanoseconds"] == stamp_of(3) - stamp_of(0)
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert {k: t["message_count"] for k, t in topics.items()} == {
        BAG_TOPICS["camera_info"]: 2,
        BAG_TOPICS["rgb"]: 4,
        BAG_TOPICS["depth"]: 4,
    }
    depth = topics[BAG_TOPICS["depth"]]["topic_metadata"]
    assert depth["type"] == IMAGE and depth["serialization_format"] == "cdr"
    assert depth["type_description_hash"] == STORE.hash_rihs01(IMAGE)
    assert meta["files"] == [
        {
            "path": "bag.mcap",
            "starting_time": {"nanoseconds_since_epoch": stamp_of(0)},
            "duration": {"nanoseconds": stamp_of(3) - stamp_of(0)},
            "message_count": 10,
        }
    ]
    with writer.path.open("rb") as f:
        reader = make_reader(f)
        header = reader.get_header()
        embedded = {m.name: m.metadata for m in reader.iter_metadata()}
        stats = reader.get_summary().statistics
    assert (header.profile, header.library) == ("ros2", f"deal_ros-{__version__}")
    assert yaml.safe_load(embedded["rosbag2"]["serialized_metadata"]) == meta
    assert stats.message_count == 10 and stats.chunk_count == 1 and stats.schema_count == 2
    assert (stats.message_start_time, stats.message_end_time) == (stamp_of(0), stamp_of(3))


def test_an_empty_bag_is_valid(tmp_path):
    writer = McapBagWriter(tmp_path / "empty").open()
    writer.add_connection(BAG_TOPICS["rgb"], IMAGE, STORE)
    writer.close()
    assert rosbags_messages(writer.bag_dir) == set() and mcap_messages(writer.path) == set()
    with Reader(writer.bag_dir) as reader:
        assert [c.topic for c in reader.connections] == [BAG_TOPICS["rgb"]]


def test_close_after_error_keeps_the_written_chunks_only(tmp_path):
    writer = write_bag(tmp_path / "bag", frames=5, flush_every=2)  # chunks: 0-1, 2-3; 4 pending
    assert writer.pending_bytes > 0
    writer.close_after_error()
    assert rosbags_messages(writer.bag_dir) == _sent(4)
    assert (writer.bag_dir / "metadata.yaml").is_file()


def test_buffers_are_referenced_not_copied_until_the_chunk_is_written(tmp_path):
    """The zero-copy contract of write_group: the caller's buffer goes to writev as is."""
    writer = McapBagWriter(tmp_path / "bag").open()
    cid = writer.add_connection(BAG_TOPICS["rgb"], IMAGE, STORE)
    rgb, _ = frame_bytes(3)
    buf = bytearray(rgb)
    writer.write_group(stamp_of(3), [(cid, buf)])
    buf[-1] ^= 0xFF  # changed after the call, before the chunk is written
    writer.close()
    ((_, _, data),) = mcap_messages(writer.path)
    assert data == bytes(buf) != bytes(rgb)


def test_a_bag_directory_is_never_overwritten(tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(EpisodeError, match="exists already"):
        McapBagWriter(tmp_path / "bag").open()
    first = McapBagWriter(tmp_path / "other").open()
    first.add_connection(BAG_TOPICS["rgb"], IMAGE, STORE)
    assert first.add_connection(BAG_TOPICS["rgb"], IMAGE, STORE) == 1  # same topic, same id
    first.close()


def test_every_crc_the_format_has_is_written(tmp_path):
    """Chunk CRCs (of the uncompressed records), the data section's CRC in DataEnd (magic up
    to DataEnd) and the summary CRC in the footer, each checked against zlib over the file's
    own bytes; the mcap library validates the chunk and data-section CRCs."""
    import struct
    import zlib

    from mcap.stream_reader import StreamReader

    from deal_ros.episodes import mcap_format as fmt

    from mcap_fixtures import records

    writer = write_bag(tmp_path / "bag", frames=5, chunk_bytes=1, info_every=2)
    writer.close()
    data = writer.path.read_bytes()
    chunks = [r for r in StreamReader(writer.path.open("rb"), validate_crcs=True,
                                      emit_chunks=True).records
              if type(r).__name__ == "Chunk"]  # fmt: skip
    assert len(chunks) == 5 and all(c.uncompressed_crc == zlib.crc32(c.data) for c in chunks)
    layout = records(data)
    (data_end, _op, n) = next(r for r in layout if r[1] == fmt.OP_DATA_END)
    (stored,) = struct.unpack_from("<I", data, data_end + 9)
    assert stored == zlib.crc32(data[:data_end]) != 0
    footer = len(data) - fmt.FOOTER_BYTES
    summary_start, _offsets, summary_crc = struct.unpack_from("<QQI", data, footer + 9)
    assert summary_start == data_end + n
    assert summary_crc == zlib.crc32(data[summary_start : footer + 9 + 16]) != 0
    assert stream_records(writer.path)[-1] == "Footer"


def test_a_flipped_byte_fails_its_chunk_crc(tmp_path):
    """One byte of pixel data flipped on disk: the mcap library refuses the chunk, our scan
    marks that one chunk bad and keeps the others."""
    from mcap.stream_reader import CRCValidationError

    writer = write_bag(tmp_path / "bag", frames=4, chunk_bytes=1)
    writer.close()
    groups = chunk_groups(writer.path)
    data = bytearray(writer.path.read_bytes())
    data[groups[1][0] - 200] ^= 0x10  # inside the second chunk's depth pixels
    writer.path.write_bytes(bytes(data))
    with pytest.raises(CRCValidationError, match="crc validation failed"):
        mcap_messages(writer.path)
    scan = scan_mcap(writer.path)
    assert scan.problem == "" and [g.crc_ok for g in scan.chunks] == [True, False, True, True]
