"""Read the messages of a rosbag2 MCAP bag with this package's own scan (no ROS, no rosbags
reader): every chunk's CRC checked, a torn file read up to its tear.

Why not rosbags' reader: it stops the whole read at the first chunk whose CRC fails
("Chunk checksum mismatch"), and it cannot open a file without its summary (a recorder killed,
a copy cut short), so one bad chunk or a torn tail makes the whole bag unreadable. Here:

- the data section is walked with :func:`~deal_ros.episodes.mcap_recover.scan_mcap`
  (record heads and message indexes only; chunk contents are read when their messages are);
- a chunk whose records do not match its CRC is skipped, listed in
  :attr:`McapBagReader.skipped` with the messages it held per topic, and reported once through
  ``warn`` (``on_crc="skip"``, the default), or stops the read with one line
  (``on_crc="stop"``); a chunk without a CRC (0, as rosbags writes) cannot be checked;
- a file without its summary is read up to its last complete chunk group;
  :meth:`McapBagReader.torn_note` says how much that is and names the command that makes the
  bag valid (``deal episodes repair --bag``).

Messages come out in log-time order across chunks and files (chunks are read lazily, as
rosbags does), each as ``(topic, log_time, raw CDR bytes)``; :meth:`McapBagReader.deserialize`
decodes them with the rosbags typestore (the bag's own definitions for types Jazzy lacks).
"""

from __future__ import annotations

import heapq
import itertools
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from deal_ros.episodes import mcap_format as fmt
from deal_ros.episodes.mcap_index import ChunkGroup, McapScan
from deal_ros.episodes.mcap_recover import scan_mcap
from deal_ros.errors import DealError

__all__ = ["REPAIR_COMMAND", "ChunkCrcError", "McapBagReader", "SkippedChunk", "mcap_files"]

#: What makes a torn plain bag valid (an episode: ``deal episodes repair <episode>``).
REPAIR_COMMAND = "deal episodes repair --bag"
ON_CRC = ("skip", "stop")
_MESSAGE_FIELDS = struct.Struct("<HIQQ")  # channel, sequence, log time, publish time


class ChunkCrcError(DealError, ValueError):
    """A chunk whose records do not match its CRC (read with ``on_crc="stop"``, or fetched
    directly)."""


@dataclass
class SkippedChunk:
    """A chunk left out because its records fail their CRC."""

    path: Path
    offset: int
    start_ns: int
    end_ns: int
    messages: dict[str, int] = field(default_factory=dict)  # topic -> messages in the chunk

    def line(self) -> str:
        held = ", ".join(f"{n} on {t}" for t, n in sorted(self.messages.items()))
        span = f"log time {self.start_ns}" + (
            f" to {self.end_ns}" if self.end_ns != self.start_ns else ""
        )
        return (
            f"'{self.path.name}': chunk at offset {self.offset} ({span}"
            f"{': ' + held if held else ''}) fails its CRC"
        )


def mcap_files(path: str | Path) -> list[Path] | None:
    """The MCAP files of a rosbag2 bag (a directory holding ``*.mcap`` files, in the order of
    its ``metadata.yaml`` when that lists them, or an ``.mcap`` file), or None when ``path`` is
    no MCAP bag."""
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix == ".mcap" else None
    if not path.is_dir():
        return None
    files = sorted(path.glob("*.mcap"))
    if not files:
        return None
    meta = path / "metadata.yaml"
    if meta.is_file():
        import yaml

        try:
            info = yaml.safe_load(meta.read_text()) or {}
            names = info["rosbag2_bagfile_information"]["relative_file_paths"]
            listed = [path / n for n in names if (path / n).is_file()]
        except (yaml.YAMLError, KeyError, TypeError, OSError):
            listed = []
        if listed and {p.name for p in listed} == {p.name for p in files}:
            return listed
    return files


@lru_cache(maxsize=1)
def _jazzy() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


class McapBagReader:
    """The messages of one MCAP bag (module doc). ``files`` in bag order; ``warn(line)``
    receives one line per skipped chunk."""

    def __init__(
        self,
        files: Sequence[str | Path],
        *,
        on_crc: str = "skip",
        warn: Callable[[str], Any] | None = None,
    ) -> None:
        if on_crc not in ON_CRC:
            raise DealError(f"on_crc must be one of {', '.join(ON_CRC)}, got {on_crc!r}")
        self.files = [Path(f) for f in files]
        self.on_crc = on_crc
        self.warn = warn or (lambda line: None)
        self.scans: list[McapScan] = [
            scan_mcap(f, trusted_until=os.path.getsize(f)) for f in self.files
        ]
        self.skipped: list[SkippedChunk] = []
        self._skipped_at: set[tuple[int, int]] = set()
        self._types: dict[str, str] = {}  # topic -> message type
        self._channels: dict[str, list[tuple[int, int]]] = {}  # topic -> [(file, channel)]
        for k, scan in enumerate(self.scans):
            for cid, (sid, topic, _enc, _meta) in scan.channels.items():
                schema = scan.schemas.get(sid)
                self._types.setdefault(topic, schema[0] if schema else "")
                self._channels.setdefault(topic, []).append((k, cid))
        self._store: Any = None
        self._by_time: dict[str, dict[int, list[tuple[int, ChunkGroup, int]]]] = {}
        self._cache: tuple[tuple[int, int], list[tuple[int, int, int, memoryview]]] | None = None

    # ------------------------------------------------------------------ what the bag holds
    @property
    def topics(self) -> dict[str, tuple[str, int]]:
        """``{topic: (message type, messages)}`` (counts from the message indexes)."""
        out = {}
        for topic, refs in self._channels.items():
            n = sum(self.scans[k].channel_counts().get(cid, 0) for k, cid in refs)
            out[topic] = (self._types[topic], n)
        return out

    def msgtype(self, topic: str) -> str:
        return self._types[topic]

    @property
    def start_time(self) -> int:
        spans = [s.time_range() for s in self.scans]
        return min((a for a, _ in filter(None, spans)), default=0)

    @property
    def torn(self) -> list[McapScan]:
        """Scans of the files that have no summary (read up to their tear)."""
        return [s for s in self.scans if not s.finalized]

    def torn_note(self, bag: str | Path) -> str:
        """One line on what a torn bag gives (empty when every file is closed)."""
        torn = self.torn
        if not torn:
            return ""
        readable = sum(s.valid_end for s in torn)
        cut = sum(s.size - s.valid_end for s in torn)
        chunks = sum(len(s.chunks) for s in torn)
        messages = sum(s.message_count for s in torn)
        why = torn[0].problem or "no summary"
        return (
            f"bag '{bag}': {', '.join(repr(s.path.name) for s in torn)} not closed ({why}); "
            f"reading the {messages} messages of its {chunks} complete chunks "
            f"({readable / 1e6:.1f} MB; the {cut} bytes after them are torn); "
            f"'{REPAIR_COMMAND} {bag}' makes it a valid bag"
        )

    # ------------------------------------------------------------------ messages
    def messages(
        self, topics: Sequence[str], start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[str, int, memoryview]]:
        """``(topic, log_time, raw)`` of ``topics`` with ``start <= log_time < stop``, in log
        time order (chunks failing their CRC skipped or stopping the read: module doc)."""
        wanted: dict[tuple[int, int], str] = {}
        for topic in topics:
            for ref in self._channels.get(topic, []):
                wanted[ref] = topic
        lo, hi = -(2**63) if start is None else start, 2**63 if stop is None else stop
        sources = []
        order = itertools.count()
        for k, scan in enumerate(self.scans):
            cids = {cid for (f, cid) in wanted if f == k}
            for group in scan.chunks:
                if group.message_end_time < lo or group.message_start_time >= hi:
                    continue
                if group.index_length and not any(
                    any(lo <= t < hi for t in group.log_times.get(c, ())) for c in cids
                ):
                    continue
                sources.append(self._chunk_source(k, group, cids, lo, hi, next(order), wanted))
        for log_time, _order, _n, topic, raw in heapq.merge(*sources):
            if topic is not None:
                yield topic, log_time, raw

    def _chunk_source(self, k, group, cids, lo, hi, order, wanted):
        yield (group.message_start_time, order, -1, None, None)  # read the chunk when due
        records = self._records(k, group)
        if records is None:
            return
        msgs = [(t, n, cid, data) for n, (t, cid, _seq, data) in enumerate(records)]
        msgs = [m for m in msgs if m[2] in cids and lo <= m[0] < hi]
        msgs.sort(key=lambda m: (m[0], m[1]))
        for t, n, cid, data in msgs:
            yield (t, order, n, wanted[k, cid], data)

    def _records(self, k: int, group: ChunkGroup) -> list | None:
        """The chunk's messages ``[(log_time, channel, sequence, data)]``, or None when it is
        skipped for its CRC (``on_crc="stop"`` raises :class:`ChunkCrcError`)."""
        try:
            return self.chunk_messages(k, group)
        except ChunkCrcError as exc:
            if self.on_crc == "stop":
                raise
            if (k, group.start) not in self._skipped_at:
                self._skipped_at.add((k, group.start))
                self.skipped.append(self._skipped(k, group))
                self.warn(f"{exc}; skipped (on_crc=stop stops the read instead)")
            return None

    def _skipped(self, k: int, group: ChunkGroup) -> SkippedChunk:
        channels = self.scans[k].channels
        held = {
            channels[c][1]: len(ts) for c, ts in group.log_times.items() if ts and c in channels
        }
        return SkippedChunk(
            self.files[k], group.start, group.message_start_time, group.message_end_time, held
        )

    def chunk_messages(self, k: int, group: ChunkGroup) -> list[tuple[int, int, int, memoryview]]:
        """Read, check and parse one chunk of file ``k`` (the last one read is cached)."""
        key = (k, group.start)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        with self.files[k].open("rb") as f:
            f.seek(group.start)
            raw = memoryview(f.read(group.length))
        body = raw[fmt.RECORD_HEAD.size :]
        _s, _e, usize, crc, compression, at, nbytes = fmt.parse_chunk_fields(body)
        content = fmt.decompress(body[at : at + nbytes], compression)
        if len(content) != usize:
            raise ChunkCrcError(f"'{self.files[k].name}': chunk at offset {group.start} holds "
                                f"{len(content)} bytes, not its {usize}")  # fmt: skip
        if crc != fmt.NO_CRC and fmt.crc32_of(content) != crc:
            raise ChunkCrcError(self._skipped(k, group).line())
        content = memoryview(content)
        out, pos = [], 0
        while pos + fmt.RECORD_HEAD.size <= len(content):
            op, length = fmt.RECORD_HEAD.unpack_from(content, pos)
            start = pos + fmt.RECORD_HEAD.size
            if op == fmt.OP_MESSAGE:
                cid, seq, log_time, _pub = _MESSAGE_FIELDS.unpack_from(content, start)
                data = content[start + fmt.MESSAGE_FIELDS_BYTES : start + length]
                out.append((log_time, cid, seq, data))
            pos = start + length
        self._cache = (key, out)
        return out

    def message_at(self, topic: str, log_time: int) -> list[memoryview]:
        """Every message of ``topic`` logged at ``log_time`` (random access through the
        message indexes, looked up, not scanned). A chunk failing its CRC raises
        :class:`ChunkCrcError`."""
        index = self._by_time.get(topic)
        if index is None:
            index = self._by_time[topic] = self._time_index(topic)
        out = []
        for k, group, cid in index.get(log_time, ()):
            for t, c, _seq, data in self.chunk_messages(k, group):
                if t == log_time and c == cid:
                    out.append(data)
        return out

    def _time_index(self, topic: str) -> dict[int, list[tuple[int, ChunkGroup, int]]]:
        """log time -> [(file, chunk group, channel)] holding a message of ``topic`` then;
        a chunk without message indexes is listed under every log time it spans."""
        out: dict[int, list[tuple[int, ChunkGroup, int]]] = {}
        for k, cid in self._channels.get(topic, []):
            for group in self.scans[k].chunks:
                times = group.log_times.get(cid, ())
                if not group.index_length:
                    times = {t for t, c, _s, _d in self.chunk_messages(k, group) if c == cid}
                for t in dict.fromkeys(times):
                    out.setdefault(t, []).append((k, group, cid))
        return out

    # ------------------------------------------------------------------ decoding
    def deserialize(self, raw: Any, msgtype: str) -> Any:
        """A rosbags message object from CDR bytes."""
        store = self._store_for(msgtype)
        return store.deserialize_cdr(raw, msgtype)

    def _store_for(self, msgtype: str) -> Any:
        store = _jazzy()
        if msgtype in store.fielddefs:
            return store
        if self._store is None:
            from rosbags.typesys import Stores, get_typestore

            self._store = get_typestore(Stores.EMPTY)
        if msgtype not in self._store.fielddefs:
            from rosbags.typesys import get_types_from_msg

            for scan in self.scans:
                for name, encoding, data in scan.schemas.values():
                    if name == msgtype and encoding == "ros2msg":
                        self._store.register(get_types_from_msg(data.decode(), msgtype))
                        break
        return self._store

    def close(self) -> None:
        self._cache = None
