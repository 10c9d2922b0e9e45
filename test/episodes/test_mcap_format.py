"""The MCAP record encoders and decoders, checked against the official mcap library."""

from __future__ import annotations

import io
import zlib

import pytest
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk

from deal_ros.episodes import mcap_format as fmt


def _file(records_crc: int | None = None) -> tuple[bytes, bytes]:
    """A small complete MCAP file with one chunk of two messages (chunk CRC ``records_crc``,
    the right one when None) and the chunk's records."""
    messages = [b"first message", b"second, longer message"]
    records, index, pos = [], [], 0
    for seq, data in enumerate(messages, 1):
        length = fmt.MESSAGE_FIELDS_BYTES + len(data)
        head = fmt.MESSAGE_HEAD.pack(fmt.OP_MESSAGE, length, 1, seq, 100 + seq, 100 + seq)
        records += [head, data]
        index.append((100 + seq, pos))
        pos += len(head) + len(data)
    crc = fmt.crc32(records) if records_crc is None else records_crc
    chunk = fmt.chunk_head(101, 102, pos, crc=crc) + b"".join(records)
    body = [
        fmt.MAGIC,
        fmt.header_record("ros2", "test"),
        fmt.record(fmt.OP_SCHEMA, fmt.schema_body(1, "pkg/msg/T", "ros2msg", b"string data")),
        fmt.record(fmt.OP_CHANNEL, fmt.channel_body(1, 1, "/t", "cdr", fmt.map_entries({}))),
        chunk,
        fmt.record(fmt.OP_MESSAGE_INDEX, fmt.message_index_body(1, index)),
        fmt.record(fmt.OP_DATA_END, fmt.data_end_body()),
        fmt.record(fmt.OP_FOOTER, fmt.footer_body(0, 0)),
        fmt.MAGIC,
    ]
    return b"".join(body), b"".join(records)


def test_crc32_of_gathered_buffers_is_the_crc_of_their_concatenation():
    parts = [b"abc", memoryview(b"defgh"), bytearray(b"\x00\xff" * 300), b""]
    assert fmt.crc32(parts) == zlib.crc32(b"".join(bytes(p) for p in parts))
    assert fmt.crc32([]) == 0 and fmt.NO_CRC == 0


def test_the_mcap_library_reads_the_encoded_records_and_checks_the_chunk_crc():
    data, records = _file()
    parsed = list(StreamReader(io.BytesIO(data), validate_crcs=True, emit_chunks=True).records)
    names = [type(r).__name__ for r in parsed]
    assert names == ["Header", "Schema", "Channel", "Chunk", "MessageIndex", "DataEnd", "Footer"]
    header, schema, channel, chunk, index = parsed[:5]
    assert (header.profile, header.library) == ("ros2", "test")
    assert (schema.id, schema.name, schema.encoding, schema.data) == (
        1,
        "pkg/msg/T",
        "ros2msg",
        b"string data",
    )
    assert (channel.id, channel.topic, channel.message_encoding, channel.metadata) == (
        1,
        "/t",
        "cdr",
        {},
    )
    assert chunk.uncompressed_crc == zlib.crc32(records) != 0
    messages = breakup_chunk(chunk, validate_crc=True)
    assert [m.data for m in messages] == [b"first message", b"second, longer message"]
    assert index.records == [(101, 0), (102, 31 + len(b"first message"))]
    bad, _ = _file(records_crc=12345)
    with pytest.raises(CRCValidationError):
        list(StreamReader(io.BytesIO(bad), validate_crcs=True).records)
    unchecked, _ = _file(records_crc=fmt.NO_CRC)  # 0: not computed, readers skip the check
    names = [
        type(r).__name__ for r in StreamReader(io.BytesIO(unchecked), validate_crcs=True).records
    ]
    assert names.count("Message") == 2 and names[-1] == "Footer"


def test_decoders_invert_the_encoders():
    body = fmt.schema_body(7, "a/msg/B", "ros2msg", b"\x00\x01def")
    assert fmt.parse_schema(memoryview(body)) == (7, ("a/msg/B", "ros2msg", b"\x00\x01def"))
    meta = fmt.map_entries({"offered_qos_profiles": "[]", "k": "v"})
    body = fmt.channel_body(3, 7, "/topic", "cdr", meta)
    assert fmt.parse_channel(body) == (3, (7, "/topic", "cdr", meta))
    assert fmt.parse_map_entries(meta) == {"offered_qos_profiles": "[]", "k": "v"}
    entries = [(5, 0), (9, 100), (12, 4000)]
    assert fmt.parse_message_index(fmt.message_index_body(2, entries)) == (2, entries)
    head = fmt.chunk_head(10, 20, 300, crc=99)
    op, length = fmt.RECORD_HEAD.unpack_from(head)
    assert op == fmt.OP_CHUNK and length == len(head) - 9 + 300
    fields = fmt.parse_chunk_fields(head[9:] + b"\0" * 300)
    assert fields == (10, 20, 300, 99, "", len(head) - 9, 300)
    footer = fmt.record(fmt.OP_FOOTER, fmt.footer_body(1, 2)) + fmt.MAGIC
    assert len(footer) == fmt.FOOTER_BYTES and fmt.is_footer(footer)
    assert not fmt.is_footer(footer[:-1] + b"?")


def test_fields_running_past_their_record_are_torn():
    body = fmt.schema_body(1, "a/msg/B", "ros2msg", b"data")
    with pytest.raises(fmt.TornRecordError, match="byte array runs past its record"):
        fmt.parse_schema(body[:-1])
    with pytest.raises(fmt.TornRecordError, match="string runs past its record"):
        fmt.parse_schema(body[:8])
    index = fmt.message_index_body(1, [(1, 2)])
    with pytest.raises(fmt.TornRecordError, match="message index of inconsistent length"):
        fmt.parse_message_index(index[:-8])
    assert fmt.read_string(b"\x02\x00\x00\x00\xff\xfe", 0) == ("\ufffd\ufffd", 6)  # replaced


def test_crc32_combine_joins_the_crcs_of_adjacent_runs():
    import os

    for n in (0, 1, 7, 4096, (1 << 20) + 3):
        a, b = os.urandom(37), os.urandom(n)
        assert fmt.crc32_combine(zlib.crc32(a), zlib.crc32(b), n) == zlib.crc32(a + b)
    assert fmt.crc32_combine(0, 0, 0) == 0


def test_strict_topic_records_refuse_what_zeros_completed():
    schema = fmt.schema_body(1, "pkg/msg/T", "ros2msg", b"string data")
    channel = fmt.channel_body(1, 1, "/t", "cdr", fmt.map_entries({"e": "", "k": "v"}))
    assert fmt.parse_schema(schema, strict=True) == fmt.parse_schema(schema)
    assert fmt.parse_channel(channel, strict=True)[1][1] == "/t"
    for torn, parse in (
        (schema[:-4] + b"\0" * 4, fmt.parse_schema),  # definition text zeroed
        (schema + b"\0", fmt.parse_schema),  # a body longer than its fields
        (channel[:-1] + b"\0", fmt.parse_channel),  # metadata map: "v" -> NUL
        (channel[:8] + b"\0" * (len(channel) - 8), fmt.parse_channel),  # topic text zeroed
    ):
        parse(torn)  # the lenient parse takes it
        with pytest.raises(fmt.TornRecordError, match="torn record"):
            parse(torn, strict=True)
