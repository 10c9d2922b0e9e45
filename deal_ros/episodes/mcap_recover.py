"""Recovery of an MCAP file after a crash: scan what a torn file still holds (ROS-free,
rosbags-free); :func:`~deal_ros.episodes.mcap_summary.finalize_mcap` then makes it valid.

An MCAP file written by rosbags is ``magic, Header, [Chunk, MessageIndex*]*, Metadata, DataEnd,
summary, Footer, magic``. A kill -9 or a power loss leaves ``magic, Header, [Chunk,
MessageIndex*]*`` and a torn tail: no summary, no footer, so readers refuse it.
:func:`scan_mcap` walks the records from the start and stops at the first one that is torn or
not what a rosbags writer produces (zeros, garbage, a record running past the end of the file,
a chunk whose message indexes are missing, a schema or channel record whose fields a zero tail
completed: :func:`~deal_ros.episodes.mcap_format.parse_schema`'s ``strict``). Every *chunk
group* (a chunk and the message-index records written right after it) before that point is
kept; the content of a chunk is parsed and checked unless it lies before ``trusted_until``
(the writer's last fsync'ed checkpoint, known to be clean). ``finalize_mcap(scan_mcap(path))``
cuts the file after the last complete group and appends the summary a clean close writes
(:mod:`deal_ros.episodes.mcap_summary`).

CRCs: a chunk that is read is checked against its CRC (when it has one). One that fails keeps
its place (its message indexes are whole, so the file structure is) but is marked
(``ChunkGroup.crc_ok = False``, :attr:`McapScan.bad_chunks`): readers skip it and repair counts
no frame of it, and its bytes are left as they are for whoever wants to look. When every kept
byte was read (or vouched for by a chunk CRC), the scan also knows the data section's CRC.

Record layouts: :mod:`deal_ros.episodes.mcap_format`.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable
from pathlib import Path

from deal_ros.episodes import mcap_format as fmt
from deal_ros.episodes.mcap_format import MAGIC, McapError, TornRecordError
from deal_ros.episodes.mcap_index import ChunkGroup, McapScan
from deal_ros.episodes.mcap_summary import finalize_mcap

# MAGIC, ChunkGroup, McapError, McapScan and finalize_mcap: where they were defined before
# the format, index and summary modules had their own files.
__all__ = ["MAGIC", "ChunkGroup", "McapError", "McapScan", "finalize_mcap", "scan_mcap"]


def _parse_chunk_content(records: memoryview, scan: McapScan, group: ChunkGroup) -> None:
    """Register the chunk's schemas and channels and note its messages (raises
    :class:`TornRecordError` on what does not parse)."""
    pos, seen = 0, {}
    while pos < len(records):
        if pos + 9 > len(records):
            raise TornRecordError("chunk content ends inside a record header")
        op, length = fmt.RECORD_HEAD.unpack_from(records, pos)
        body = records[pos + 9 : pos + 9 + length]
        if len(body) != length:
            raise TornRecordError("chunk content record runs past the chunk")
        if op == fmt.OP_SCHEMA:
            sid, schema = fmt.parse_schema(body, strict=True)
            scan.schemas[sid] = schema
        elif op == fmt.OP_CHANNEL:
            cid, channel = fmt.parse_channel(body, strict=True)
            scan.channels[cid] = channel
        elif op == fmt.OP_MESSAGE:
            if length < fmt.MESSAGE_FIELDS_BYTES:
                raise TornRecordError(f"message record of {length} bytes")
            cid, _seq, log_time = struct.unpack_from("<HIQ", body, 0)
            if cid not in scan.channels:
                raise TornRecordError(f"message on unknown channel {cid}")
            if not group.message_start_time <= log_time <= group.message_end_time:
                raise TornRecordError("message log time outside its chunk's time range")
            seen.setdefault(cid, []).append((log_time, pos))
        else:
            raise TornRecordError(f"unexpected record 0x{op:02x} inside a chunk")
        pos += 9 + length
    group.content_channels = set(seen)
    group.content_entries = seen


def _read_chunk(
    f, pos: int, length: int, scan: McapScan, parse: bool, crc: int | None = None
) -> tuple[ChunkGroup, int | None]:
    """The chunk record at ``pos`` (its body ``length`` bytes), and the running data CRC
    ``crc`` extended over it (None when not known: a chunk not read and without a CRC)."""
    head = f.read(min(length, 4096))
    if len(head) < 40:
        raise TornRecordError("chunk record too short")
    start, end, usize, stored, compression, p, csize = fmt.parse_chunk_fields(memoryview(head))
    if p + csize != length:
        raise TornRecordError("chunk sizes do not add up")
    group = ChunkGroup(pos, 9 + length, start, end, compression, csize, usize, crc=stored)
    prefix = fmt.RECORD_HEAD.pack(fmt.OP_CHUNK, length) + head[:p]
    if not parse:  # trusted: the stored CRC vouches for uncompressed records
        ok = crc is not None and stored != fmt.NO_CRC and compression == ""
        crc = fmt.crc32_combine(fmt.crc32_of(prefix, crc), stored, csize) if ok else None
        return group, crc
    f.seek(pos + 9 + p)
    data = f.read(csize)
    if len(data) != csize:
        raise TornRecordError("chunk record runs past the end of the file")
    data_crc = fmt.crc32_of(data)
    if crc is not None:
        crc = fmt.crc32_combine(fmt.crc32_of(prefix, crc), data_crc, csize)
    content = fmt.decompress(data, compression)
    if len(content) != usize:
        raise TornRecordError("chunk content shorter than its uncompressed size")
    if stored != fmt.NO_CRC:
        group.crc_ok = (data_crc if compression == "" else fmt.crc32_of(content)) == stored
    if group.crc_ok is not False:
        _parse_chunk_content(memoryview(content), scan, group)
        return group, crc
    # records that fail their CRC define nothing; their messages are checked against the
    # message indexes when they still parse, else the indexes alone describe the chunk
    probe = McapScan(scan.path, 0, 0, 0, False, dict(scan.schemas), dict(scan.channels))
    with contextlib.suppress(TornRecordError, struct.error, UnicodeDecodeError):
        _parse_chunk_content(memoryview(content), probe, group)
    if probe.channels.keys() != scan.channels.keys():
        raise TornRecordError(f"chunk at offset {pos} fails its CRC and defines a channel")
    return group, crc


def _read_index(body: memoryview, group: ChunkGroup, pos: int, length: int) -> None:
    """Add the message-index record at ``pos`` to its chunk ``group``."""
    cid, entries = fmt.parse_message_index(body)
    group.index_offsets[cid] = pos
    group.index_length += 9 + length
    group.log_times[cid] = [t for t, _ in entries]
    group.index_entries[cid] = entries


def _check_footer(f, size: int, data_start: int) -> bool:
    if size < data_start + fmt.FOOTER_BYTES:
        return False
    f.seek(size - fmt.FOOTER_BYTES)
    return fmt.is_footer(f.read(fmt.FOOTER_BYTES))


def _open_header(f, path: Path, size: int) -> int:
    magic = f.read(8)
    if magic != MAGIC:
        raise McapError(f"MCAP file '{path}': bad magic {magic[:8]!r} (not an MCAP file)")
    head = f.read(9)
    if len(head) < 9 or head[0] != fmt.OP_HEADER:
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
    f.seek(0)
    crc: int | None = fmt.crc32_of(f.read(scan.data_start))  # of the file up to ``pos``
    scan.data_crc = crc

    def close(pending: ChunkGroup | None) -> None:
        if pending is None:
            return
        if pending.content_channels is None and any(
            c not in scan.channels for c in pending.log_times
        ):  # a trusted chunk that defines a new channel: read its content after all
            f.seek(pending.start + 9)
            reparsed, _ = _read_chunk(f, pending.start, pending.length - 9, scan, parse=True)
            pending.content_channels = reparsed.content_channels
            pending.content_entries = reparsed.content_entries
            pending.crc_ok = reparsed.crc_ok
            if reparsed.crc_ok is False:
                raise TornRecordError(
                    f"chunk at offset {pending.start} fails its CRC and would define a channel"
                )
        if pending.crc_ok is False and not pending.index_entries:
            raise TornRecordError(
                f"chunk at offset {pending.start} fails its CRC and has no message index"
            )
        if not pending.complete():
            raise TornRecordError(
                f"chunk at offset {pending.start}: message indexes incomplete or inconsistent"
            )
        pending.data_crc = crc  # the group ends where the next record starts
        scan.chunks.append(pending)
        scan.valid_end, scan.data_crc = pending.end, crc
        if progress is not None:
            progress(pending.end)

    try:
        while pos + 9 <= limit:
            f.seek(pos)
            head = f.read(9)
            op, length = fmt.RECORD_HEAD.unpack(head)
            if op == 0 or op > fmt.MAX_OP:
                raise TornRecordError(f"invalid opcode 0x{op:02x} at offset {pos}")
            if pos + 9 + length > limit:
                raise TornRecordError(
                    f"record 0x{op:02x} at offset {pos} runs past the end of the file"
                )
            if op == fmt.OP_MESSAGE_INDEX:
                if group is None:
                    raise TornRecordError(f"message index without a chunk at offset {pos}")
                body = f.read(length)
                try:
                    _read_index(memoryview(body), group, pos, length)
                except (TornRecordError, struct.error):
                    group = None  # a torn index spoils its chunk group
                    raise
                crc = None if crc is None else fmt.crc32_of(body, fmt.crc32_of(head, crc))
            else:
                pending, group = group, None
                close(pending)
                if op in (fmt.OP_DATA_END, fmt.OP_METADATA, fmt.OP_FOOTER):
                    return  # a clean (or closing) end of the data section
                if op == fmt.OP_CHUNK:
                    f.seek(pos + 9)
                    trusted = pos + 9 + length <= trusted_until and bool(scan.channels)
                    group, crc = _read_chunk(f, pos, length, scan, parse=not trusted, crc=crc)
                elif op in (fmt.OP_SCHEMA, fmt.OP_CHANNEL):
                    body = f.read(length)
                    parse = fmt.parse_schema if op == fmt.OP_SCHEMA else fmt.parse_channel
                    key, value = parse(memoryview(body), strict=True)
                    (scan.schemas if op == fmt.OP_SCHEMA else scan.channels)[key] = value
                    crc = None if crc is None else fmt.crc32_of(body, fmt.crc32_of(head, crc))
                    scan.valid_end, scan.data_crc = pos + 9 + length, crc
                else:
                    raise TornRecordError(f"unexpected record 0x{op:02x} at offset {pos}")
            pos += 9 + length
        if pos < limit:
            raise TornRecordError(f"{limit - pos} bytes of a torn record at offset {pos}")
    except (TornRecordError, struct.error, UnicodeDecodeError) as exc:
        scan.problem = str(exc) or type(exc).__name__
    try:
        close(group)
    except (TornRecordError, struct.error, UnicodeDecodeError) as exc:
        scan.problem = scan.problem or str(exc)
