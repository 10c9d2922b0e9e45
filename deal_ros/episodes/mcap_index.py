"""What the data section of an MCAP file holds: its schemas, channels and chunk groups (a chunk
and the message-index records right after it), with the counts and times a summary needs.

Built record by record by :class:`~deal_ros.episodes.mcap_writer.McapBagWriter` as it writes,
and by :func:`~deal_ros.episodes.mcap_recover.scan_mcap` when it reads a possibly torn file;
:func:`~deal_ros.episodes.mcap_summary.finalize_mcap` writes the summary from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ChunkGroup", "McapScan"]


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
    crc: int = 0  # the chunk's stored CRC of its uncompressed records (0: none)
    crc_ok: bool | None = None  # checked against the records: True/False; None: not checked
    data_crc: int | None = None  # CRC-32 of the file from its first byte to this group's end

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
    """What a data section holds (what :func:`~deal_ros.episodes.mcap_recover.scan_mcap`
    found, or what the writer wrote so far). ``valid_end`` is where the clean data section ends."""

    path: Path
    size: int
    data_start: int
    valid_end: int
    finalized: bool
    schemas: dict[int, tuple[str, str, bytes]] = field(default_factory=dict)
    channels: dict[int, tuple[int, str, str, bytes]] = field(default_factory=dict)
    chunks: list[ChunkGroup] = field(default_factory=list)
    problem: str = ""
    data_crc: int | None = None  # CRC-32 of the file up to ``valid_end`` (None: not known)

    @property
    def bad_chunks(self) -> list[ChunkGroup]:
        """Chunk groups whose records do not match their CRC (readers skip them)."""
        return [g for g in self.chunks if g.crc_ok is False]

    @property
    def tail_bytes(self) -> int:
        """Bytes after the last complete chunk group (dropped by
        :func:`~deal_ros.episodes.mcap_summary.finalize_mcap`)."""
        return 0 if self.finalized else self.size - self.valid_end

    def topic_channel(self, topic: str) -> int | None:
        return next((cid for cid, ch in self.channels.items() if ch[1] == topic), None)

    def log_times(self, channel: int, *, good_only: bool = False) -> list[int]:
        """Log times of ``channel``'s messages (``good_only``: not in a chunk failing its
        CRC)."""
        groups = [g for g in self.chunks if not (good_only and g.crc_ok is False)]
        return [t for group in groups for t in group.log_times.get(channel, [])]

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
