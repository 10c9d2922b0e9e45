"""Close an MCAP file: after its data section, the summary that makes it readable.

Every clean close (:meth:`~deal_ros.episodes.mcap_writer.McapBagWriter.close`) and every repair
after a crash (:func:`~deal_ros.episodes.mcap_recover.scan_mcap`, then here) ends in
:func:`finalize_mcap`: cut the file after its last complete chunk group and append what a
rosbags writer writes at the end: a ``rosbag2`` metadata record, DataEnd, then the summary
(schemas, channels, chunk indexes, metadata index, statistics), summary offsets, footer and
magic. The result is a valid indexed MCAP file that rosbags, the ``mcap`` reader and
``ros2 bag`` read. No data is copied, so it also works on a full disk (it needs the few
kilobytes of the summary).

CRCs: DataEnd carries the data section's CRC when the scan knows it (the writer always does; a
repair that read every kept byte does too; else 0, "not available"), the footer the summary's.
"""

from __future__ import annotations

import errno
import os

from deal_ros.episodes import mcap_format as fmt
from deal_ros.episodes.mcap_format import McapError
from deal_ros.episodes.mcap_index import ChunkGroup, McapScan

__all__ = ["finalize_mcap", "summary_bytes"]

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_SLACK_BYTES = 65536  # freed beyond the summary's size when chunks must go for a full disk


def _chunk_index(g: ChunkGroup) -> bytes:
    return fmt.chunk_index_body(
        g.message_start_time,
        g.message_end_time,
        g.start,
        g.length,
        g.index_offsets,
        g.index_length,
        g.compression,
        g.compressed_size,
        g.uncompressed_size,
    )


def _statistics(index: McapScan, chunks: list[ChunkGroup]) -> bytes:
    counts: dict[int, int] = dict.fromkeys(index.channels, 0)
    for g in chunks:
        for cid, times in g.log_times.items():
            counts[cid] = counts.get(cid, 0) + len(times)
    timed = [g for g in chunks if any(g.log_times.values())]
    return fmt.statistics_body(
        schemas=len(index.schemas),
        channels=len(index.channels),
        chunks=len(chunks),
        start=min((g.message_start_time for g in timed), default=0),
        end=max((g.message_end_time for g in timed), default=0),
        channel_counts=counts,
    )


def summary_bytes(
    index: McapScan,
    chunks: list[ChunkGroup],
    start: int,
    metadata: dict[str, str],
    data_crc: int | None = None,
) -> bytes:
    """Metadata, DataEnd, summary, summary offsets, footer and magic, for a data section that
    ends at file offset ``start`` and keeps ``chunks`` (of ``index``); ``data_crc``: the CRC-32
    of the file's first ``start`` bytes, if known."""
    records: list[bytes] = []
    at = start  # file offset of the next record

    def add(op: int, body: bytes) -> None:
        nonlocal at
        records.append(fmt.record(op, body))
        at += len(records[-1])

    add(fmt.OP_METADATA, fmt.metadata_body("rosbag2", metadata))
    metadata_length = at - start
    crc = fmt.NO_CRC if data_crc is None else fmt.crc32(records, data_crc)
    add(fmt.OP_DATA_END, fmt.data_end_body(crc))
    summary_start = at
    groups: list[tuple[int, int, int]] = []  # (opcode, offset, length) of each summary group

    def group(op: int, bodies: list[bytes]) -> None:
        if not bodies:
            return
        begin = at
        for body in bodies:
            add(op, body)
        groups.append((op, begin, at - begin))

    group(
        fmt.OP_SCHEMA,
        [fmt.schema_body(sid, *schema) for sid, schema in sorted(index.schemas.items())],
    )
    group(
        fmt.OP_CHANNEL,
        [fmt.channel_body(cid, *channel) for cid, channel in sorted(index.channels.items())],
    )
    group(fmt.OP_CHUNK_INDEX, [_chunk_index(g) for g in chunks])
    group(fmt.OP_METADATA_INDEX, [fmt.metadata_index_body(start, metadata_length, "rosbag2")])
    group(fmt.OP_STATISTICS, [_statistics(index, chunks)])
    offsets_start = at
    for op, begin, length in groups:
        add(fmt.OP_SUMMARY_OFFSET, fmt.summary_offset_body(op, begin, length))
    summary = records[next(k for k, r in enumerate(records) if r[0] == fmt.OP_DATA_END) + 1 :]
    footer_head = fmt.record(fmt.OP_FOOTER, fmt.footer_body(summary_start, offsets_start))
    summary_crc = fmt.crc32([*summary, footer_head[:-4]])  # up to the footer's CRC field
    add(fmt.OP_FOOTER, fmt.footer_body(summary_start, offsets_start, summary_crc))
    return b"".join(records) + fmt.MAGIC


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
            tail = summary_bytes(scan, chunks, end, metadata or {}, _crc_at(scan, chunks))
            try:
                f.truncate(end)
                f.seek(end)
                f.write(tail)
                f.flush()
                if sync:
                    os.fsync(f.fileno())
                break
            except OSError as exc:
                if exc.errno not in _DISK_FULL or not chunks:
                    f.truncate(end)
                    raise McapError(
                        f"MCAP file '{scan.path}': cannot write its summary: {exc}"
                    ) from exc
                chunks = _drop_for(chunks, len(tail) + _SLACK_BYTES)
    size = end + len(tail)
    return McapScan(
        scan.path,
        size,
        scan.data_start,
        end,
        True,
        scan.schemas,
        scan.channels,
        chunks,
        data_crc=_crc_at(scan, chunks),
    )


def _crc_at(scan: McapScan, chunks: list[ChunkGroup]) -> int | None:
    """The CRC-32 of the data section ending where ``chunks`` end (None: not known)."""
    if chunks:
        return chunks[-1].data_crc
    return scan.data_crc if not scan.chunks else None


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
