"""The MCAP record format (https://mcap.dev/spec): magic, opcodes, record layouts, the encoders
of every record this package writes, the decoders of those it reads back, and the CRC helper.

A record is ``opcode (uint8), body length (uint64), body``; strings and byte arrays inside a
body are ``uint32 length, bytes``; integers are little-endian. This module knows bytes only:
what a data section holds is :mod:`deal_ros.episodes.mcap_index`, the summary written from it
:mod:`deal_ros.episodes.mcap_summary`, the writer :mod:`deal_ros.episodes.mcap_writer` and the
scan of a torn file :mod:`deal_ros.episodes.mcap_recover`.

CRCs: the writer fills in every CRC field the format has: each chunk's (of its uncompressed
records), the data section's (DataEnd: every byte from the magic up to DataEnd) and the
summary's (Footer: the summary section and the footer's fields before the CRC).
:data:`NO_CRC` (0) means "not computed" in the spec (what rosbags writes); readers check a CRC
only when it is not 0. :func:`crc32` computes one over gathered buffers and
:func:`crc32_combine` joins the CRCs of two adjacent byte runs without reading them again (so
the data-section CRC costs no second pass over the pixels).

Top-level schema and channel records are parsed strictly (:func:`parse_schema` and
:func:`parse_channel` with ``strict=True``): the fields must fill the body exactly, names and
encodings be non-empty and free of NUL bytes. A record torn by a power loss and completed by
the zeros the file system leaves has NUL bytes or empty fields where its text was, so it is
refused instead of kept with junk fields.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from deal_ros.errors import DealError

__all__ = [
    "CHUNK_HEAD",
    "FOOTER_BYTES",
    "MAGIC",
    "MAX_OP",
    "MESSAGE_FIELDS_BYTES",
    "MESSAGE_HEAD",
    "NO_CRC",
    "OP_ATTACHMENT",
    "OP_CHANNEL",
    "OP_CHUNK",
    "OP_CHUNK_INDEX",
    "OP_DATA_END",
    "OP_FOOTER",
    "OP_HEADER",
    "OP_MESSAGE",
    "OP_MESSAGE_INDEX",
    "OP_METADATA",
    "OP_METADATA_INDEX",
    "OP_SCHEMA",
    "OP_STATISTICS",
    "OP_SUMMARY_OFFSET",
    "RECORD_HEAD",
    "McapError",
    "TornRecordError",
    "channel_body",
    "chunk_head",
    "chunk_index_body",
    "crc32",
    "crc32_combine",
    "crc32_of",
    "data_end_body",
    "decompress",
    "footer_body",
    "header_record",
    "is_footer",
    "map_entries",
    "message_index_body",
    "metadata_body",
    "metadata_index_body",
    "parse_channel",
    "parse_chunk_fields",
    "parse_map_entries",
    "parse_message_index",
    "parse_schema",
    "prefixed",
    "read_prefixed",
    "read_string",
    "record",
    "schema_body",
    "statistics_body",
    "string",
    "summary_offset_body",
]

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE = 0x01, 0x02, 0x03, 0x04, 0x05
OP_CHUNK, OP_MESSAGE_INDEX, OP_CHUNK_INDEX, OP_ATTACHMENT = 0x06, 0x07, 0x08, 0x09
OP_STATISTICS, OP_METADATA, OP_METADATA_INDEX, OP_SUMMARY_OFFSET = 0x0B, 0x0C, 0x0D, 0x0E
OP_DATA_END = 0x0F
MAX_OP = 0x0F
NO_CRC = 0

#: opcode, body length: the head of every record.
RECORD_HEAD = struct.Struct("<BQ")
#: record head + channel id, sequence, log time, publish time (the message data follows).
MESSAGE_HEAD = struct.Struct("<BQHIQQ")
MESSAGE_FIELDS_BYTES = MESSAGE_HEAD.size - RECORD_HEAD.size  # 22: a message body without data
#: record head + message start time, end time, uncompressed size, uncompressed CRC.
CHUNK_HEAD = struct.Struct("<BQQQQI")
_CHUNK_FIELDS = struct.Struct("<QQQI")
_FOOTER_BODY = struct.Struct("<QQI")  # summary start, summary offset start, summary CRC
FOOTER_BYTES = RECORD_HEAD.size + _FOOTER_BODY.size + len(MAGIC)  # footer record + magic


class McapError(DealError, ValueError):
    """A file that is not an MCAP file, or cannot be made valid."""


class TornRecordError(Exception):
    """A record whose fields do not fit its length (a reader stops there; the message says
    why)."""


try:  # ISA-L's CRC-32 (PCLMULQDQ): 3.1 GB/s here against zlib's 1.2 GB/s, the same values
    from isal.isal_zlib import crc32 as _crc32  # type: ignore[import-not-found]
except ImportError:  # optional (pip install isal); zlib gives the same CRC
    _crc32 = zlib.crc32


def crc32(buffers: Iterable[Any], value: int = 0) -> int:
    """CRC-32 (the spec's, zlib's) of the buffers one after the other, as if joined (ISA-L's
    implementation when the ``isal`` package is installed, else zlib's)."""
    for buf in buffers:
        value = _crc32(buf, value)
    return value


def crc32_of(buf: Any, value: int = 0) -> int:
    """:func:`crc32` of one buffer."""
    return _crc32(buf, value)


_POLY = 0xEDB88320  # the reflected CRC-32 polynomial


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial (both reflected, as zlib's crc32_combine does)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


_X2N = [1 << 30]  # x^(2^k) modulo the polynomial, k = 0..31
for _ in range(31):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc1 = crc32(A)``, ``crc2 = crc32(B)`` and ``len(B)``
    (zlib's ``crc32_combine``, which Python's zlib does not expose): about 0.2 ms, whatever
    ``len2``."""
    p, n, k = 1 << 31, int(len2), 3  # x^(8 * len2): k = 3 starts at x^(2^3) = one byte
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2


# ---------------------------------------------------------------- encoders


def string(text: str) -> bytes:
    """A string field: uint32 byte length, UTF-8 bytes."""
    return prefixed(text.encode())


def prefixed(raw: bytes) -> bytes:
    """A byte-array (or map) field: uint32 length, bytes."""
    return struct.pack("<I", len(raw)) + raw


def record(op: int, body: bytes) -> bytes:
    return RECORD_HEAD.pack(op, len(body)) + body


def header_record(profile: str, library: str) -> bytes:
    return record(OP_HEADER, string(profile) + string(library))


def schema_body(sid: int, name: str, encoding: str, data: bytes) -> bytes:
    return struct.pack("<H", sid) + string(name) + string(encoding) + prefixed(data)


def channel_body(cid: int, sid: int, topic: str, encoding: str, metadata: bytes) -> bytes:
    """``metadata`` is an encoded map (:func:`map_entries`)."""
    return struct.pack("<HH", cid, sid) + string(topic) + string(encoding) + prefixed(metadata)


def map_entries(items: Mapping[str, str]) -> bytes:
    """The key/value entries of a ``Map<string, string>`` (its length prefix not included)."""
    return b"".join(string(key) + string(value) for key, value in items.items())


def chunk_head(
    start: int, end: int, records_bytes: int, crc: int = NO_CRC, compression: str = ""
) -> bytes:
    """Everything of an uncompressed chunk record before its ``records_bytes`` of records."""
    tail = string(compression) + struct.pack("<Q", records_bytes)
    length = _CHUNK_FIELDS.size + len(tail) + records_bytes
    return CHUNK_HEAD.pack(OP_CHUNK, length, start, end, records_bytes, crc) + tail


def message_index_body(cid: int, entries: list[tuple[int, int]]) -> bytes:
    """``entries``: (log time, offset of the message inside the chunk's records)."""
    flat = [v for entry in entries for v in entry]
    return struct.pack("<HI", cid, 8 * len(flat)) + struct.pack(f"<{len(flat)}Q", *flat)


def chunk_index_body(
    message_start_time: int,
    message_end_time: int,
    chunk_start: int,
    chunk_length: int,
    index_offsets: Mapping[int, int],
    index_length: int,
    compression: str,
    compressed_size: int,
    uncompressed_size: int,
) -> bytes:
    head = struct.pack("<QQQQ", message_start_time, message_end_time, chunk_start, chunk_length)
    offsets = b"".join(struct.pack("<HQ", c, o) for c, o in sorted(index_offsets.items()))
    return (
        head
        + prefixed(offsets)
        + struct.pack("<Q", index_length)
        + string(compression)
        + struct.pack("<QQ", compressed_size, uncompressed_size)
    )


def metadata_body(name: str, items: Mapping[str, str]) -> bytes:
    return string(name) + prefixed(map_entries(items))


def metadata_index_body(offset: int, length: int, name: str) -> bytes:
    return struct.pack("<QQ", offset, length) + string(name)


def statistics_body(
    *,
    schemas: int,
    channels: int,
    chunks: int,
    start: int,
    end: int,
    channel_counts: Mapping[int, int],
    attachments: int = 0,
    metadata: int = 1,
) -> bytes:
    """Statistics of a data section; ``channel_counts``: messages per channel id."""
    head = struct.pack(
        "<QHIIIIQQ",
        sum(channel_counts.values()),
        schemas,
        channels,
        attachments,
        metadata,
        chunks,
        start,
        end,
    )
    counts = b"".join(struct.pack("<HQ", c, n) for c, n in sorted(channel_counts.items()))
    return head + prefixed(counts)


def data_end_body(crc: int = NO_CRC) -> bytes:
    return struct.pack("<I", crc)


def summary_offset_body(op: int, group_start: int, group_length: int) -> bytes:
    return struct.pack("<BQQ", op, group_start, group_length)


def footer_body(summary_start: int, summary_offset_start: int, crc: int = NO_CRC) -> bytes:
    return _FOOTER_BODY.pack(summary_start, summary_offset_start, crc)


# ---------------------------------------------------------------- decoders


def decompress(data: Any, compression: str) -> Any:
    """A chunk's records from its stored bytes (``""``: as they are; ``zstd``, ``lz4``)."""
    if compression == "":
        return data
    if compression == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]
        except ImportError:
            from backports import zstd  # type: ignore[import-not-found,no-redef]
        return zstd.decompress(bytes(data))
    if compression == "lz4":
        from lz4.frame import decompress as lz4_decompress  # type: ignore[import-untyped]

        return lz4_decompress(bytes(data))
    raise TornRecordError(f"unknown chunk compression {compression!r}")


def read_string(buf: Any, pos: int) -> tuple[str, int]:
    """The string field at ``pos`` of ``buf`` (undecodable bytes replaced) and the position
    after it."""
    (n,) = struct.unpack_from("<I", buf, pos)
    if pos + 4 + n > len(buf):
        raise TornRecordError("string runs past its record")
    return bytes(buf[pos + 4 : pos + 4 + n]).decode("utf-8", "replace"), pos + 4 + n


def read_prefixed(buf: Any, pos: int) -> tuple[bytes, int]:
    """The byte-array field at ``pos`` of ``buf`` and the position after it."""
    (n,) = struct.unpack_from("<I", buf, pos)
    if pos + 4 + n > len(buf):
        raise TornRecordError("byte array runs past its record")
    return bytes(buf[pos + 4 : pos + 4 + n]), pos + 4 + n


def parse_map_entries(raw: bytes) -> dict[str, str]:
    """The entries of a ``Map<string, string>`` (:func:`map_entries`' inverse), lenient: a
    torn last entry is cut short, undecodable bytes are replaced."""
    pos, items = 0, {}
    while pos + 4 <= len(raw):
        n = int.from_bytes(raw[pos : pos + 4], "little")
        key = raw[pos + 4 : pos + 4 + n].decode("utf-8", "replace")
        pos += 4 + n
        m = int.from_bytes(raw[pos : pos + 4], "little")
        items[key] = raw[pos + 4 : pos + 4 + m].decode("utf-8", "replace")
        pos += 4 + m
    return items


_TEXT_SCHEMAS = ("ros2msg", "ros2idl", "ros1msg", "jsonschema")


def _strict_text(what: str, text: str, *, empty_ok: bool = False) -> None:
    if "\0" in text or "\ufffd" in text or (not text and not empty_ok):
        raise TornRecordError(f"{what} is empty or holds NUL/undecodable bytes (a torn record)")


def _strict_end(what: str, pos: int, body: Any) -> None:
    if pos != len(body):
        raise TornRecordError(f"{what} fields fill {pos} of its {len(body)} bytes (a torn record)")


def parse_schema(body: Any, *, strict: bool = False) -> tuple[int, tuple[str, str, bytes]]:
    """``(schema id, (name, encoding, data))`` of a schema record's body; ``strict``: refuse
    (:class:`TornRecordError`) what a torn record completed by zeros looks like (module doc)."""
    (sid,) = struct.unpack_from("<H", body, 0)
    name, pos = read_string(body, 2)
    encoding, pos = read_string(body, pos)
    data, pos = read_prefixed(body, pos)
    if strict:
        _strict_end("schema record", pos, body)
        _strict_text("schema name", name)
        _strict_text("schema encoding", encoding)
        if encoding in _TEXT_SCHEMAS and b"\0" in data:
            raise TornRecordError("schema definition holds NUL bytes (a torn record)")
    return sid, (name, encoding, data)


def parse_channel(body: Any, *, strict: bool = False) -> tuple[int, tuple[int, str, str, bytes]]:
    """``(channel id, (schema id, topic, message encoding, metadata map))`` of a channel body;
    ``strict`` as for :func:`parse_schema` (the metadata map must parse exactly too)."""
    cid, sid = struct.unpack_from("<HH", body, 0)
    topic, pos = read_string(body, 4)
    encoding, pos = read_string(body, pos)
    metadata, pos = read_prefixed(body, pos)
    if strict:
        _strict_end("channel record", pos, body)
        _strict_text("channel topic", topic)
        _strict_text("channel message encoding", encoding)
        _strict_map(metadata)
    return cid, (sid, topic, encoding, metadata)


def _strict_map(raw: bytes) -> None:
    """A ``Map<string, string>``'s entries that fill ``raw`` exactly, keys non-empty, no NUL."""
    pos = 0
    while pos < len(raw):
        key, pos = read_string(raw, pos)
        value, pos = read_string(raw, pos)
        _strict_text("channel metadata key", key)
        _strict_text("channel metadata value", value, empty_ok=True)


def parse_chunk_fields(body: Any) -> tuple[int, int, int, int, str, int, int]:
    """``(start, end, uncompressed size, crc, compression, records offset, records bytes)``
    of a chunk record's body (its first bytes suffice: the records are not read)."""
    start, end, usize, crc = _CHUNK_FIELDS.unpack_from(body, 0)
    compression, pos = read_string(body, _CHUNK_FIELDS.size)
    (records_bytes,) = struct.unpack_from("<Q", body, pos)
    return start, end, usize, crc, compression, pos + 8, records_bytes


def parse_message_index(body: Any) -> tuple[int, list[tuple[int, int]]]:
    """``(channel id, [(log time, offset), ...])`` of a message-index body."""
    cid, nbytes = struct.unpack_from("<HI", body, 0)
    if nbytes % 16 or 6 + nbytes != len(body):
        raise TornRecordError("message index of inconsistent length")
    values = struct.unpack_from(f"<{nbytes // 8}Q", body, 6)
    return cid, list(zip(values[0::2], values[1::2]))


def is_footer(tail: bytes) -> bool:
    """True when ``tail`` (the last :data:`FOOTER_BYTES` of a file) is a footer and the magic."""
    return (
        tail[: RECORD_HEAD.size] == RECORD_HEAD.pack(OP_FOOTER, _FOOTER_BODY.size)
        and tail[-len(MAGIC) :] == MAGIC
    )
