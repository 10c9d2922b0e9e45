"""scan_mcap + finalize_mcap on real torn files: cut at every record boundary and inside
every record, read back with the official mcap library and with rosbags."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from deal_ros.episodes import mcap_format as fmt
from deal_ros.episodes.bag_metadata import bag_metadata
from deal_ros.episodes.mcap_recover import McapError, scan_mcap
from deal_ros.episodes.mcap_summary import finalize_mcap
from deal_ros.episodes.meta import BAG_TOPICS

from mcap_fixtures import (
    IMAGE,
    STORE,
    chunk_groups,
    image_bytes,
    mcap_messages,
    records,
    rosbags_messages,
    stamp_of,
    stream_records,
    write_bag,
)


def _finalized_and_torn(tmp_path, **kw):
    """A closed bag's file and its data section alone (what a kill -9 leaves)."""
    writer = write_bag(tmp_path / "src", **kw)
    writer.close()
    full = writer.path.read_bytes()
    data_end = next(pos for pos, op, _ in records(full) if op == fmt.OP_METADATA)
    return writer.path, full, full[:data_end]


def _finalize_copy(path, blob, **scan_kw):
    path.parent.mkdir()
    path.write_bytes(blob)
    scan = scan_mcap(path, **scan_kw)
    final = finalize_mcap(scan, metadata={"serialized_metadata": "x"}, sync=False)
    return scan, final


def _with_metadata_yaml(final) -> None:
    info = {"rosbag2_bagfile_information": bag_metadata(final)}
    (final.path.parent / "metadata.yaml").write_text(yaml.safe_dump(info, sort_keys=False))


@pytest.mark.slow
def test_every_cut_keeps_exactly_the_complete_chunk_groups(tmp_path):
    src, _full, data = _finalized_and_torn(
        tmp_path, frames=6, chunk_bytes=1, info_every=3, late_topic_at=3
    )
    everything = mcap_messages(src)
    groups = chunk_groups(src)
    assert len(groups) == 6
    layout = records(data)
    header_end = layout[0][0] + layout[0][2]
    kinds = {op for _, op, _ in layout}
    assert kinds == {fmt.OP_HEADER, fmt.OP_SCHEMA, fmt.OP_CHANNEL, fmt.OP_CHUNK,
                     fmt.OP_MESSAGE_INDEX}  # fmt: skip
    clean = {header_end} | {end for end, _ in groups}
    clean |= {pos + n for pos, op, n in layout if op in (fmt.OP_SCHEMA, fmt.OP_CHANNEL)}
    cuts = set()
    for pos, _op, n in layout[1:]:
        cuts |= {pos, pos + 1, pos + n // 2, pos + n - 1}  # a boundary, inside head and body
    cuts |= {len(data)}
    previous = -1
    for n, cut in enumerate(sorted(cuts)):
        for tail in (b"", b"\0" * 64):
            path = tmp_path / f"c{n}_{len(tail)}" / "bag.mcap"
            blob = data[:cut] + tail
            scan, final = _finalize_copy(path, blob)
            # a group is kept iff the file holds its exact bytes (zeros of a power loss may
            # complete a record whose missing bytes were zeros)
            intact = [end for end, _ in groups if blob[:end] == data[:end]]
            kept = set().union(*(msgs for end, msgs in groups if end in intact))
            assert (scan.problem == "") == (cut in clean and not tail), (cut, scan.problem)
            last_clean = max(c for c in clean if blob[:c] == data[:c])
            if tail:
                assert last_clean <= scan.valid_end <= len(blob), cut
            else:
                assert scan.valid_end == last_clean, cut
            assert final.finalized and final.size == path.stat().st_size
            assert final.message_count == len(kept)
            assert {(t, lt) for t, lt, _ in mcap_messages(path)} == kept, cut
            assert mcap_messages(path) <= everything  # the bytes of each message intact
            assert stream_records(path)[-1] == "Footer"  # the data section's CRC checked too
            _with_metadata_yaml(final)
            assert {(t, lt) for t, lt, _ in rosbags_messages(path.parent)} == kept
            if not tail:
                assert len(kept) >= previous  # more bytes never keep fewer messages
                previous = len(kept)
    assert previous == len(everything)


def test_a_zero_tail_does_not_complete_a_torn_topic_record(tmp_path):
    """Zeros after a schema or channel record torn by a power loss fill its missing fields;
    the strict parse refuses the record (NUL bytes, empty fields or fields that do not fill the
    body) instead of keeping it with junk, at every cut inside it."""
    _src, _full, data = _finalized_and_torn(tmp_path, frames=2)
    topic_records = [r for r in records(data) if r[1] in (fmt.OP_SCHEMA, fmt.OP_CHANNEL)]
    assert len(topic_records) == 3  # one Image schema, the rgb and depth channels
    for pos, _op, n in topic_records:  # every cut in the last 100 bytes (the zeros reach the end)
        for cut in {pos + 9, pos + n // 2, *range(max(pos + 9, pos + n - 100), pos + n)}:
            path = tmp_path / f"z{cut}" / "bag.mcap"
            scan, _final = _finalize_copy(path, data[:cut] + b"\0" * 64)
            if data[cut : pos + n].strip(b"\0"):  # the zeros do not equal the lost bytes
                assert scan.valid_end == pos and scan.problem, cut
            assert all(ch[2] == "cdr" for ch in scan.channels.values()), cut
            assert all(s[:2] == (IMAGE, "ros2msg") for s in scan.schemas.values()), cut
            assert stream_records(path)[-1] == "Footer"


def test_what_a_cut_keeps_of_topics_and_counts(tmp_path):
    src, _full, data = _finalized_and_torn(tmp_path, frames=8, chunk_bytes=1, late_topic_at=4)
    groups = chunk_groups(src)
    cut = groups[5][0] + 100  # inside the 7th chunk: 6 frames kept, /late since frame 4
    scan, final = _finalize_copy(tmp_path / "cut" / "bag.mcap", data[:cut])
    assert "runs past the end of the file" in scan.problem
    assert len(scan.chunks) == 6 and final.message_count == 6 * 2 + 2
    late = scan.topic_channel("/late")
    assert scan.log_times(late) == [stamp_of(4), stamp_of(5)]
    assert scan.time_range() == (stamp_of(0), stamp_of(5))
    counts = {scan.channels[c][1]: n for c, n in scan.channel_counts().items()}
    assert counts == {
        BAG_TOPICS["rgb"]: 6,
        BAG_TOPICS["depth"]: 6,
        "/late": 2,
    }


def test_a_finalized_file_is_left_untouched(tmp_path):
    writer = write_bag(tmp_path / "bag", frames=5, chunk_bytes=1)
    writer.close()
    before = writer.path.read_bytes()
    scan = scan_mcap(writer.path)
    assert scan.finalized and scan.problem == "" and scan.tail_bytes == 0
    assert len(scan.chunks) == 5 and scan.message_count == 10
    assert finalize_mcap(scan) is scan and writer.path.read_bytes() == before


def test_trusted_prefix_is_not_reread(tmp_path):
    """Chunks before ``trusted_until`` are taken from their message indexes: a scan that trusts
    them gives the same result without reading them, and so does not see that a chunk was
    damaged after the fact; a full scan finds it by its CRC (the chunk is kept, marked bad,
    for readers to skip), or by its structure when the chunk has no CRC (rosbags writes 0)."""
    src, _full, data = _finalized_and_torn(tmp_path, frames=6, chunk_bytes=1, late_topic_at=3)
    groups = chunk_groups(src)
    for end, _ in groups:
        path = tmp_path / f"t{end}.mcap"
        path.write_bytes(data)
        trusted, full_scan = scan_mcap(path, trusted_until=end), scan_mcap(path)
        assert [g.log_times for g in trusted.chunks] == [g.log_times for g in full_scan.chunks]
        assert trusted.channels == full_scan.channels  # /late's channel found all the same
    chunk = next(pos for pos, op, _ in records(data) if op == fmt.OP_CHUNK)
    first_message = chunk + 9 + 28 + 4 + 8  # the chunk's fields, then its first record
    damaged = bytearray(data)
    struct.pack_into("<H", damaged, first_message + 9, 77)  # channel 77 does not exist
    path = tmp_path / "damaged.mcap"
    path.write_bytes(bytes(damaged))
    full_scan = scan_mcap(path)
    assert full_scan.problem == "" and len(full_scan.chunks) == len(groups)
    assert [g.crc_ok for g in full_scan.chunks] == [False] + [True] * (len(groups) - 1)
    assert full_scan.bad_chunks == full_scan.chunks[:1]
    trusted = scan_mcap(path, trusted_until=groups[-1][0])
    assert len(trusted.chunks) == len(groups) and not trusted.bad_chunks
    struct.pack_into("<I", damaged, chunk + 9 + 24, fmt.NO_CRC)  # a chunk without a CRC
    path.write_bytes(bytes(damaged))
    assert scan_mcap(path).problem == "message on unknown channel 77"
    assert len(scan_mcap(path).chunks) == 0


def test_progress_is_reported_after_each_chunk_group(tmp_path):
    src, _full, data = _finalized_and_torn(tmp_path, frames=4, chunk_bytes=1)
    path = tmp_path / "p.mcap"
    path.write_bytes(data)
    seen: list[int] = []
    scan_mcap(path, progress=seen.append)
    assert seen == [end for end, _ in chunk_groups(src)]


def test_garbage_after_the_last_chunk_is_cut(tmp_path):
    src, _full, data = _finalized_and_torn(tmp_path, frames=3, chunk_bytes=1)
    path = tmp_path / "g" / "bag.mcap"
    scan, final = _finalize_copy(path, data + b"\xff" * 100)
    assert scan.problem.startswith("invalid opcode 0xff at offset")
    assert scan.tail_bytes == 100 and final.message_count == 6
    assert {(t, lt) for t, lt, _ in mcap_messages(path)} == {
        m for _, msgs in chunk_groups(src) for m in msgs
    }


def test_not_an_mcap_file_is_one_clear_error(tmp_path):
    _src, _full, data = _finalized_and_torn(tmp_path, frames=1)
    cases = {
        b"": "bad magic",
        b"PK\x03\x04 zip file": "bad magic",
        data[:8]: "no header record after the magic",
        data[:8] + b"\x05" + data[9:20]: "no header record after the magic",
        data[:20]: "header record truncated",
    }
    for n, (blob, why) in enumerate(cases.items()):
        path = tmp_path / f"bad{n}.mcap"
        path.write_bytes(blob)
        with pytest.raises(McapError, match=why) as err:
            scan_mcap(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_cut_right_after_the_header_keeps_the_topics_and_no_message(tmp_path):
    _src, _full, data = _finalized_and_torn(tmp_path, frames=2)
    layout = records(data)
    before_chunk = next(pos for pos, op, _ in layout if op == fmt.OP_CHUNK)
    scan, final = _finalize_copy(tmp_path / "h" / "bag.mcap", data[:before_chunk])
    assert scan.problem == "" and len(scan.channels) == 2 and final.message_count == 0
    assert mcap_messages(final.path) == set()
    _with_metadata_yaml(final)
    assert rosbags_messages(final.path.parent) == set()


def test_a_bag_written_by_rosbags_is_recovered(tmp_path):
    """The scan is not tied to our writer: a rosbags-written MCAP bag, torn in the middle of
    its data section, is finalized and read back."""
    bag = tmp_path / "rosbags_bag"
    sent = []
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/image", IMAGE, typestore=STORE)
        for i in range(12):
            pixels = np.full((240, 320, 3), i, np.uint8)  # 230 KB: several 1 MiB chunks
            raw = bytes(image_bytes(pixels, "rgb8", stamp_of(i)))
            writer.write(conn, stamp_of(i), raw)
            sent.append(("/image", stamp_of(i), raw))
    mcap = next(bag.glob("*.mcap"))
    src = tmp_path / "copy.mcap"
    shutil.copy(mcap, src)
    groups = chunk_groups(src)
    assert len(groups) >= 3
    cut = groups[1][0] + 1000  # inside the third chunk
    torn = tmp_path / "torn" / "torn.mcap"
    scan, final = _finalize_copy(torn, src.read_bytes()[:cut])
    kept = set(groups[0][1] | groups[1][1])
    assert scan.problem and {(t, lt) for t, lt, _ in mcap_messages(torn)} == kept
    assert mcap_messages(torn) <= set(sent)
    _with_metadata_yaml(final)
    assert rosbags_messages(torn.parent) == {m for m in sent if (m[0], m[1]) in kept}


def test_names_of_mcap_recover_before_the_split_still_import_from_it():
    import deal_ros.episodes.mcap_recover as recover
    from deal_ros.episodes import mcap_index, mcap_summary

    assert recover.finalize_mcap is mcap_summary.finalize_mcap
    assert recover.McapScan is mcap_index.McapScan and recover.ChunkGroup is mcap_index.ChunkGroup
    assert recover.MAGIC == fmt.MAGIC and recover.McapError is fmt.McapError
    assert set(recover.__all__) == {
        "MAGIC", "ChunkGroup", "McapError", "McapScan", "finalize_mcap", "scan_mcap"
    }  # fmt: skip
