"""Scan a possibly truncated MCAP file and finalize it in place (ROS-free, rosbags-free).

An MCAP file written by rosbags is ``magic, Header, [Chunk, MessageIndex*]*, Metadata, DataEnd,
summary, Footer, magic``. A kill -9 or a power loss leaves ``magic, Header, [Chunk,
MessageIndex*]*`` and a torn tail: no summary, no footer, so readers refuse it. This module

- :func:`scan_mcap` walks the records from the start and stops at the first one that is torn
  or not what a rosbags writer produces (zeros, garbage, a record running past the end of the
  file, a chunk whose message indexes are missing). Every *chunk group* (a chunk and the
  message-index records written right after it) before that point is kept; the content of a
  chunk is parsed and checked unless it lies before ``trusted_until`` (the writer's last
  fsync'ed checkpoint, known to be clean);
- :func:`finalize_mcap` cuts the file after the last complete group and appends what a clean
  close writes: a ``rosbag2`` metadata record, DataEnd, schemas, channels, chunk indexes,
  statistics, summary offsets, footer and magic. The result is a valid indexed MCAP file that
  rosbags, the ``mcap`` reader and ``ros2 bag`` read. No data is copied, so it also works on a
  full disk (it needs the few kilobytes of the summary, see ``free_bytes``).

Record layouts follow the MCAP specification (https://mcap.dev/spec).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from deal_ros.errors import DealError

__all__ = ["MAGIC", "ChunkGroup", "McapError", "McapScan", "finalize_mcap", "scan_mcap"]

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE = 0x01, 0x02, 0x03, 0x04, 0x05
OP_CHUNK, OP_MESSAGE_INDEX, OP_CHUNK_INDEX, OP_ATTACHMENT = 0x06, 0x07, 0x08, 0x09
OP_STATISTICS, OP_METADATA, OP_METADATA_INDEX, OP_SUMMARY_OFFSET = 0x0B, 0x0C, 0x0D, 0x0E
OP_DATA_END = 0x0F
_MAX_OP = 0x0F
_REC = struct.Struct("<BQ")
_FOOTER_LEN = 9 + 20 + len(MAGIC)


class McapError(DealError, ValueError):
    """A file that is not an MCAP file, or cannot be made valid."""


@dataclass
class ChunkGroup:
    """One chunk record and the message-index records that follow it."""

    start: int  # file offset of the chunk record
    length: int  # length of the chunk record including opcode and length prefix
    message_start_time: int
    message_end_time: int
    compression: str
    compressed_size: int
    uncompressed_size: int
    index_offsets: dict[int, int] = field(default_factory=dict)  # channel -> record offset
    index_length: int = 0
    log_times: dict[int, list[int]] = field(default_factory=dict)  # channel -> log times
    content_channels: set[int] | None = None  # channels seen in the parsed content
    content_entries: dict[int, list[tuple[int, int]]] | None = None  # parsed (log_time, offset)
    index_entries: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.start + self.length + self.index_length

    def complete(self) -> bool:
        """True when every channel with messages in the chunk has its message index."""
        if self.content_entries is None:
            return True
        return all(
            sorted(self.index_entries.get(cid, ())) == sorted(entries)
            for cid, entries in self.content_entries.items()
        )


@dataclass
class McapScan:
    """What :func:`scan_mcap` found. ``valid_end`` is where the clean data section ends."""

    path: Path
    size: int
    data_start: int
    valid_end: int
    finalized: bool
    schemas: dict[int, tuple[str, str, bytes]] = field(default_factory=dict)
    channels: dict[int, tuple[int, str, str, bytes]] = field(default_factory=dict)
    chunks: list[ChunkGroup] = field(default_factory=list)
    problem: str = ""

    @property
    def tail_bytes(self) -> int:
        """Bytes after the last complete chunk group (dropped by :func:`finalize_mcap`)."""
        return 0 if self.finalized else self.size - self.valid_end

    def topic_channel(self, topic: str) -> int | None:
        return next((cid for cid, ch in self.channels.items() if ch[1] == topic), None)

    def log_times(self, channel: int) -> list[int]:
        return [t for group in self.chunks for t in group.log_times.get(channel, [])]

    def channel_counts(self) -> dict[int, int]:
        counts = dict.fromkeys(self.channels, 0)
        for group in self.chunks:
            for cid, times in group.log_times.items():
                counts[cid] = counts.get(cid, 0) + len(times)
        return counts

    @property
    def message_count(self) -> int:
        return sum(self.channel_counts().values())

    def time_range(self) -> tuple[int, int] | None:
        groups = [g for g in self.chunks if any(g.log_times.values())]
        if not groups:
            return None
        return min(g.message_start_time for g in groups), max(g.message_end_time for g in groups)


class _TornError(Exception):
    """Scanning stops here; the message says why."""


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    if pos + 4 + n > len(buf):
        raise _TornError("string runs past its record")
    return bytes(buf[pos + 4 : pos + 4 + n]).decode("utf-8", "replace"), pos + 4 + n


def _bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    if pos + 4 + n > len(buf):
        raise _TornError("byte array runs past its record")
    return bytes(buf[pos + 4 : pos + 4 + n]), pos + 4 + n


def _parse_schema(body: memoryview) -> tuple[int, tuple[str, str, bytes]]:
    (sid,) = struct.unpack_from("<H", body, 0)
    name, pos = _string(body, 2)
    encoding, pos = _string(body, pos)
    data, _ = _bytes(body, pos)
    return sid, (name, encoding, data)


def _parse_channel(body: memoryview) -> tuple[int, tuple[int, str, str, bytes]]:
    cid, sid = struct.unpack_from("<HH", body, 0)
    topic, pos = _string(body, 4)
    encoding, pos = _string(body, pos)
    metadata, _ = _bytes(body, pos)
    return cid, (sid, topic, encoding, metadata)


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]
        except ImportError:
            from backports import zstd  # type: ignore[import-not-found,no-redef]
        return zstd.decompress(data)
    if compression == "lz4":
        from lz4.frame import decompress  # type: ignore[import-untyped]

        return decompress(data)
    raise _TornError(f"unknown chunk compression {compression!r}")


def _parse_chunk_content(records: memoryview, scan: McapScan, group: ChunkGroup) -> None:
    pos, seen = 0, {}
    while pos < len(records):
        if pos + 9 > len(records):
            raise _TornError("chunk content ends inside a record header")
        op, length = _REC.unpack_from(records, pos)
        body = records[pos + 9 : pos + 9 + length]
        if len(body) != length:
            raise _TornError("chunk content record runs past the chunk")
        if op == OP_SCHEMA:
            sid, schema = _parse_schema(body)
            scan.schemas[sid] = schema
        elif op == OP_CHANNEL:
            cid, channel = _parse_channel(body)
            scan.channels[cid] = channel
        elif op == OP_MESSAGE:
            if length < 22:
                raise _TornError(f"message record of {length} bytes")
            cid, _seq, log_time = struct.unpack_from("<HIQ", body, 0)
            if cid not in scan.channels:
                raise _TornError(f"message on unknown channel {cid}")
            if not group.message_start_time <= log_time <= group.message_end_time:
                raise _TornError("message log time outside its chunk's time range")
            seen.setdefault(cid, []).append((log_time, pos))
        else:
            raise _TornError(f"unexpected record 0x{op:02x} inside a chunk")
        pos += 9 + length
    group.content_channels = set(seen)
    group.content_entries = seen


def _read_chunk(f, pos: int, length: int, scan: McapScan, parse: bool) -> ChunkGroup:
    head = f.read(min(length, 4096))
    if len(head) < 40:
        raise _TornError("chunk record too short")
    start, end, usize, _crc = struct.unpack_from("<QQQI", head, 0)
    compression, p = _string(memoryview(head), 28)
    (csize,) = struct.unpack_from("<Q", head, p)
    p += 8
    if p + csize != length:
        raise _TornError("chunk sizes do not add up")
    group = ChunkGroup(pos, 9 + length, start, end, compression, csize, usize)
    if parse:
        f.seek(pos + 9 + p)
        data = f.read(csize)
        content = _decompress(data, compression, usize)
        if len(content) != usize:
            raise _TornError("chunk content shorter than its uncompressed size")
        _parse_chunk_content(memoryview(content), scan, group)
    return group


def _read_index(body: memoryview, group: ChunkGroup, pos: int, length: int) -> None:
    (cid,) = struct.unpack_from("<H", body, 0)
    (nbytes,) = struct.unpack_from("<I", body, 2)
    if nbytes % 16 or 6 + nbytes != len(body):
        raise _TornError("message index of inconsistent length")
    entries = struct.unpack_from(f"<{nbytes // 8}Q", body, 6)
    group.index_offsets[cid] = pos
    group.index_length += 9 + length
    group.log_times[cid] = list(entries[0::2])
    group.index_entries[cid] = list(zip(entries[0::2], entries[1::2]))


def _check_footer(f, size: int, data_start: int) -> bool:
    if size < data_start + _FOOTER_LEN:
        return False
    f.seek(size - _FOOTER_LEN)
    tail = f.read(_FOOTER_LEN)
    return tail[:9] == _REC.pack(OP_FOOTER, 20) and tail[-8:] == MAGIC


def _open_header(f, path: Path, size: int) -> int:
    magic = f.read(8)
    if magic != MAGIC:
        raise McapError(f"MCAP file '{path}': bad magic {magic[:8]!r} (not an MCAP file)")
    head = f.read(9)
    if len(head) < 9 or head[0] != OP_HEADER:
        raise McapError(f"MCAP file '{path}': no header record after the magic")
    (length,) = struct.unpack_from("<Q", head, 1)
    if 17 + length > size:
        raise McapError(f"MCAP file '{path}': header record truncated")
    return 17 + length


def scan_mcap(
    path: str | Path,
    *,
    trusted_until: int = 0,
    progress: Callable[[int], None] | None = None,
) -> McapScan:
    """Walk ``path`` record by record (see module doc). Chunks that end at or before
    ``trusted_until`` are not re-read (their message indexes suffice) unless they may hold a
    schema or channel not seen yet. ``progress(offset)`` is called after every chunk group.

    Raises :class:`McapError` only when the file has no valid MCAP magic and header; a torn
    tail is reported in ``McapScan.problem``."""
    path = Path(path)
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        data_start = _open_header(f, path, size)
        scan = McapScan(path, size, data_start, data_start, _check_footer(f, size, data_start))
        _walk(f, scan, trusted_until, progress)
    return scan


def _walk(f, scan: McapScan, trusted_until: int, progress) -> None:
    pos, limit, group = scan.data_start, scan.size, None

    def close(pending: ChunkGroup | None) -> None:
        if pending is None:
            return
        if pending.content_channels is None and any(
            c not in scan.channels for c in pending.log_times
        ):  # a trusted chunk that defines a new channel: read its content after all
            f.seek(pending.start + 9)
            reparsed = _read_chunk(f, pending.start, pending.length - 9, scan, parse=True)
            pending.content_channels = reparsed.content_channels
            pending.content_entries = reparsed.content_entries
        if not pending.complete():
            raise _TornError(
                f"chunk at offset {pending.start}: message indexes incomplete or inconsistent"
            )
        scan.chunks.append(pending)
        scan.valid_end = pending.end
        if progress is not None:
            progress(pending.end)

    try:
        while pos + 9 <= limit:
            f.seek(pos)
            op, length = _REC.unpack(f.read(9))
            if op == 0 or op > _MAX_OP:
                raise _TornError(f"invalid opcode 0x{op:02x} at offset {pos}")
            if pos + 9 + length > limit:
                raise _TornError(f"record 0x{op:02x} at offset {pos} runs past the end of the file")
            if op == OP_MESSAGE_INDEX:
                if group is None:
                    raise _TornError(f"message index without a chunk at offset {pos}")
                try:
                    _read_index(memoryview(f.read(length)), group, pos, length)
                except (_TornError, struct.error):
                    group = None  # a torn index spoils its chunk group
                    raise
            else:
                pending, group = group, None
                close(pending)
                if op in (OP_DATA_END, OP_METADATA, OP_FOOTER):
                    return  # a clean (or closing) end of the data section
                if op == OP_CHUNK:
                    f.seek(pos + 9)
                    trusted = pos + 9 + length <= trusted_until and bool(scan.channels)
                    group = _read_chunk(f, pos, length, scan, parse=not trusted)
                elif op in (OP_SCHEMA, OP_CHANNEL):
                    body = memoryview(f.read(length))
                    key, value = (_parse_schema if op == OP_SCHEMA else _parse_channel)(body)
                    (scan.schemas if op == OP_SCHEMA else scan.channels)[key] = value
                    scan.valid_end = pos + 9 + length
                else:
                    raise _TornError(f"unexpected record 0x{op:02x} at offset {pos}")
            pos += 9 + length
        if pos < limit:
            raise _TornError(f"{limit - pos} bytes of a torn record at offset {pos}")
    except (_TornError, struct.error, UnicodeDecodeError) as exc:
        scan.problem = str(exc) or type(exc).__name__
    try:
        close(group)
    except (_TornError, struct.error, UnicodeDecodeError) as exc:
        scan.problem = scan.problem or str(exc)


# ---------------------------------------------------------------- writing the summary


def _w_string(bio: BytesIO, text: str) -> None:
    raw = text.encode()
    bio.write(struct.pack("<I", len(raw)))
    bio.write(raw)


def _w_bytes(bio: BytesIO, raw: bytes) -> None:
    bio.write(struct.pack("<I", len(raw)))
    bio.write(raw)


def _record(out: BytesIO, op: int, body: bytes) -> None:
    out.write(_REC.pack(op, len(body)))
    out.write(body)


def _schema_body(sid: int, schema: tuple[str, str, bytes]) -> bytes:
    bio = BytesIO()
    bio.write(struct.pack("<H", sid))
    _w_string(bio, schema[0])
    _w_string(bio, schema[1])
    _w_bytes(bio, schema[2])
    return bio.getvalue()


def _channel_body(cid: int, channel: tuple[int, str, str, bytes]) -> bytes:
    bio = BytesIO()
    bio.write(struct.pack("<HH", cid, channel[0]))
    _w_string(bio, channel[1])
    _w_string(bio, channel[2])
    _w_bytes(bio, channel[3])
    return bio.getvalue()


def _chunk_index_body(g: ChunkGroup) -> bytes:
    bio = BytesIO()
    chunk_length = g.length
    bio.write(struct.pack("<QQQQ", g.message_start_time, g.message_end_time, g.start, chunk_length))
    offsets = b"".join(struct.pack("<HQ", c, o) for c, o in sorted(g.index_offsets.items()))
    _w_bytes(bio, offsets)
    bio.write(struct.pack("<Q", g.index_length))
    _w_string(bio, g.compression)
    bio.write(struct.pack("<QQ", g.compressed_size, g.uncompressed_size))
    return bio.getvalue()


def _map_body(items: dict[str, str]) -> bytes:
    bio = BytesIO()
    for key, value in items.items():
        _w_string(bio, key)
        _w_string(bio, value)
    return bio.getvalue()


def _statistics_body(scan: McapScan, chunks: list[ChunkGroup]) -> bytes:
    counts: dict[int, int] = dict.fromkeys(scan.channels, 0)
    for g in chunks:
        for cid, times in g.log_times.items():
            counts[cid] = counts.get(cid, 0) + len(times)
    timed = [g for g in chunks if any(g.log_times.values())]
    start = min((g.message_start_time for g in timed), default=0)
    end = max((g.message_end_time for g in timed), default=0)
    bio = BytesIO()
    bio.write(
        struct.pack(
            "<QHIIIIQQ",
            sum(counts.values()),
            len(scan.schemas),
            len(scan.channels),
            0,
            1,
            len(chunks),
            start,
            end,
        )
    )
    _w_bytes(bio, b"".join(struct.pack("<HQ", c, n) for c, n in sorted(counts.items())))
    return bio.getvalue()


def _tail(scan: McapScan, chunks: list[ChunkGroup], start: int, metadata: dict[str, str]) -> bytes:
    """Metadata, DataEnd, summary, footer and magic, for a data section ending at ``start``."""
    out = BytesIO()
    meta_body = BytesIO()
    _w_string(meta_body, "rosbag2")
    _w_bytes(meta_body, _map_body(metadata))
    meta_offset = start
    _record(out, OP_METADATA, meta_body.getvalue())
    meta_length = out.tell()
    _record(out, OP_DATA_END, struct.pack("<I", 0))
    summary_start = start + out.tell()
    groups: list[tuple[int, int, int]] = []  # (opcode, offset, length)

    def group(op: int, bodies: list[bytes]) -> None:
        if not bodies:
            return
        begin = start + out.tell()
        for body in bodies:
            _record(out, op, body)
        groups.append((op, begin, start + out.tell() - begin))

    group(OP_SCHEMA, [_schema_body(k, v) for k, v in sorted(scan.schemas.items())])
    group(OP_CHANNEL, [_channel_body(k, v) for k, v in sorted(scan.channels.items())])
    group(OP_CHUNK_INDEX, [_chunk_index_body(g) for g in chunks])
    index = BytesIO()
    index.write(struct.pack("<QQ", meta_offset, meta_length))
    _w_string(index, "rosbag2")
    group(OP_METADATA_INDEX, [index.getvalue()])
    group(OP_STATISTICS, [_statistics_body(scan, chunks)])
    offsets_start = start + out.tell()
    for op, begin, length in groups:
        _record(out, OP_SUMMARY_OFFSET, struct.pack("<BQQ", op, begin, length))
    _record(out, OP_FOOTER, struct.pack("<QQI", summary_start, offsets_start, 0))
    out.write(MAGIC)
    return out.getvalue()


def finalize_mcap(
    scan: McapScan,
    *,
    metadata: dict[str, str] | None = None,
    sync: bool = True,
) -> McapScan:
    """Cut ``scan.path`` after its last complete chunk group and append a summary (module
    doc). ``metadata`` goes into the ``rosbag2`` metadata record (e.g.
    ``{"serialized_metadata": <metadata.yaml text>}``).

    On a full disk, trailing chunk groups are dropped until the summary fits; the returned scan
    describes what the file holds now. A file that is already finalized is left untouched."""
    if scan.finalized:
        return scan
    chunks = list(scan.chunks)
    with scan.path.open("r+b") as f:
        while True:
            end = chunks[-1].end if chunks else _data_floor(scan)
            tail = _tail(scan, chunks, end, metadata or {})
            try:
                f.truncate(end)
                f.seek(end)
                f.write(tail)
                f.flush()
                if sync:
                    os.fsync(f.fileno())
                break
            except OSError as exc:
                if not _no_space(exc) or not chunks:
                    f.truncate(end)
                    raise McapError(
                        f"MCAP file '{scan.path}': cannot write its summary: {exc}"
                    ) from exc
                chunks = _drop_for(chunks, len(tail) + 65536)
    size = end + len(tail)
    return McapScan(
        scan.path, size, scan.data_start, end, True, scan.schemas, scan.channels, chunks
    )


def _data_floor(scan: McapScan) -> int:
    """End of the data section when no chunk is kept: after the header and any schema/channel
    records written outside chunks."""
    return scan.valid_end if not scan.chunks else scan.chunks[0].start


def _drop_for(chunks: list[ChunkGroup], need: int) -> list[ChunkGroup]:
    """Drop trailing chunk groups until at least ``need`` bytes are freed."""
    chunks = list(chunks)
    freed = 0
    while chunks and freed < need:
        g = chunks.pop()
        freed += g.end - g.start
    return chunks


def _no_space(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
