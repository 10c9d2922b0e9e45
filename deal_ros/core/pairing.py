"""Approximate-time pairing of two or more streams by header stamp (ROS-free).

ONE algorithm, used by the live recorder node and by bag replay, so training sees the pairs
the robot saw. Like ROS ``message_filters.ApproximateTimeSynchronizer``, simpler and with
every decision spelled out.

Rules (``S`` = the set of the oldest queued message of every stream, the *heads*; its
spread = newest head stamp - oldest head stamp; the *pivot* = the oldest head, ties going
to the stream listed first). Each stream's queue is kept sorted by stamp. While every stream
has a queued message:

1. spread(S) > slop: the pivot can never be paired (every other stream's queued and future
   messages are at least as new as its head, assuming each stream's stamps arrive in
   increasing order), so it is dropped as ``"no_match"``.
2. Otherwise ``S`` is a valid set. Swapping a non-oldest member for a later message never
   shrinks the spread, so only the pivot stream's next message ``p'`` can make a closer set
   ``S'`` (``S`` with ``p'`` for the pivot). If it does (strictly smaller spread), the pivot
   is dropped as ``"no_match"`` -- its partners fit ``p'`` better -- unless ``S'`` would give
   way in turn, i.e. the next message of ``S'``'s own oldest member ``q`` makes a set
   tighter than ``S'``; then ``q`` is left to the pivot and ``S`` is emitted (``p'`` pairs
   with ``q``'s successor later). If ``S`` cannot be improved, it is emitted.
   Whenever one of these next messages is needed but has not arrived yet, the pairer waits
   for it, so a set may come out one message late; :meth:`ApproxTimePairer.flush` stops
   waiting (a missing next message then counts as none).

Good to know: with a slop under half of every stream's message interval (the default
15 ms at 30 Hz), every frame whose per-stream stamps lie within the slop is paired (tested
property). With a larger slop the rule favours the closest sets over the most sets.

Also: a message whose stamp is not newer than the last *emitted* stamp of its stream is
dropped as ``"out_of_order"`` (after a clock step back, :meth:`ApproxTimePairer.restart`
forgets those stamps) (on arrival, or at emission for a queued duplicate stamp), so
each stream's emitted stamps strictly increase; pushing into a full queue drops that
queue's oldest message as ``"queue_full"``, after first deciding what still waited for a
message not yet received as :meth:`ApproxTimePairer.flush` would (a set held back only by a
missing next message is emitted rather than lost when the other stream overflows);
:meth:`ApproxTimePairer.flush` (end of input) stops waiting, emits what still pairs and drops
the rest as ``"no_match"``. After a flush,
``pushed`` equals ``emitted + dropped`` (all reasons) for every stream.

Determinism: the output depends only on the order of ``push`` calls (no clocks, no hashing).
Thread safety: ``push``/``flush``/``stats`` take an internal lock, so ROS callbacks on a
multi-threaded executor may call them directly. Cost per push: ``O(queue_size)`` for an
out-of-order insert, ``O(len(streams))`` per emitted set or drop.
"""

from __future__ import annotations

import operator
import threading
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deal_ros.core.errors import PairingError

__all__ = [
    "DEFAULT_SLOP_NS",
    "DROP_REASONS",
    "ApproxTimePairer",
    "PairedSet",
    "PairingStats",
    "ns_to_sec_nanosec",
    "stamp_to_ns",
]

#: 15 ms: under half the 33.3 ms period of a 30 Hz camera (our choice).
DEFAULT_SLOP_NS = 15_000_000
DROP_REASONS = ("out_of_order", "queue_full", "no_match")
_NS = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds from a ``builtin_interfaces/Time`` (rclpy or rosbags: fields
    ``sec``/``nanosec``), a ``std_msgs/Header`` (its ``stamp``), an ``rclpy.time.Time``
    (``nanoseconds``) or an int."""
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        return stamp
    stamp = getattr(stamp, "stamp", stamp)
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    try:
        return int(stamp.sec) * _NS + int(stamp.nanosec)
    except AttributeError:
        raise PairingError(
            "stamp_to_ns: expected a Time (sec, nanosec), a Header or int nanoseconds, "
            f"got {type(stamp).__name__}"
        ) from None


def ns_to_sec_nanosec(stamp_ns: int) -> tuple[int, int]:
    """``(sec, nanosec)`` for a ``builtin_interfaces/Time`` (nanosec in ``[0, 1e9)``)."""
    sec, nanosec = divmod(int(stamp_ns), _NS)
    return sec, nanosec


@dataclass(frozen=True)
class PairedSet:
    """One emitted set: ``items[stream]`` is what was pushed for that stream.

    ``stamp_ns`` is the stamp of the FIRST stream's message (e.g. the colour image, whose
    header the recorder keeps); ``stamps`` holds every stream's own stamp."""

    stamp_ns: int
    items: dict[str, Any]
    stamps: dict[str, int]

    @property
    def spread_ns(self) -> int:
        """Newest minus oldest stamp in the set (always <= the pairer's slop)."""
        return max(self.stamps.values()) - min(self.stamps.values())


@dataclass
class PairingStats:
    """Counters: messages ``pushed`` per stream, sets ``emitted``, ``dropped[reason][stream]``."""

    streams: tuple[str, ...]
    pushed: dict[str, int] = field(default_factory=dict)
    emitted: int = 0
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def empty(cls, streams: tuple[str, ...]) -> PairingStats:
        return cls(
            streams,
            dict.fromkeys(streams, 0),
            0,
            {reason: dict.fromkeys(streams, 0) for reason in DROP_REASONS},
        )

    def copy(self) -> PairingStats:
        dropped = {reason: dict(counts) for reason, counts in self.dropped.items()}
        return PairingStats(self.streams, dict(self.pushed), self.emitted, dropped)

    def dropped_total(self, reason: str | None = None, stream: str | None = None) -> int:
        """Drops summed over every reason/stream unless one is named."""
        reasons = DROP_REASONS if reason is None else (reason,)
        streams = self.streams if stream is None else (stream,)
        return sum(self.dropped[r][s] for r in reasons for s in streams)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pushed": dict(self.pushed),
            "emitted": self.emitted,
            "dropped": {r: dict(c) for r, c in self.dropped.items()},
        }


_Entry = tuple  # (stamp_ns, sequence number, item): the unique sequence number keeps the
# sort stable and means items themselves are never compared.


class ApproxTimePairer:
    """Pair messages of ``streams`` whose stamps lie within ``slop_ns`` (rules: module doc).

    ``queue_size`` bounds every stream's queue (overflow drops the oldest as
    ``"queue_full"``). :meth:`push` returns the sets completed by that message, oldest first.
    ``on_drop(stream, stamp_ns, reason)``, when given, hears of every dropped message (under
    the pairer's lock: it must not call the pairer).
    """

    def __init__(
        self,
        streams: Sequence[str] = ("rgb", "depth"),
        slop_ns: int = DEFAULT_SLOP_NS,
        queue_size: int = 30,
        on_drop: Callable[[str, int, str], Any] | None = None,
    ) -> None:
        streams = tuple(streams)
        if not streams or len(set(streams)) != len(streams):
            raise PairingError(f"pairer: streams must be distinct names, got {streams}")
        slop_ns, queue_size = _as_int(slop_ns, "slop_ns"), _as_int(queue_size, "queue_size")
        if slop_ns < 0:
            raise PairingError(f"pairer: slop_ns must be >= 0, got {slop_ns}")
        if queue_size < 1:
            raise PairingError(f"pairer: queue_size must be >= 1, got {queue_size}")
        self.streams = streams
        self.slop_ns = slop_ns
        self.queue_size = queue_size
        self._queues: list[deque[_Entry]] = [deque() for _ in streams]
        self._index = {name: k for k, name in enumerate(streams)}
        self._last: list[int | None] = [None] * len(streams)
        self._seq = 0
        self._stats = PairingStats.empty(streams)
        self._lock = threading.Lock()
        self._on_drop = on_drop

    @property
    def stats(self) -> PairingStats:
        """A snapshot of the counters."""
        with self._lock:
            return self._stats.copy()

    def pending(self) -> dict[str, int]:
        """Messages waiting in each stream's queue."""
        with self._lock:
            return {name: len(q) for name, q in zip(self.streams, self._queues)}

    def push(self, stream: str, stamp_ns: int, item: Any) -> list[PairedSet]:
        """Offer one message; returns the sets it completed (often ``[]``)."""
        k = self._index.get(stream)
        if k is None:
            raise PairingError(f"pairer: unknown stream {stream!r}; streams are {self.streams}")
        stamp = _as_int(stamp_ns, "stamp_ns")
        with self._lock:
            self._stats.pushed[stream] += 1
            last = self._last[k]
            if last is not None and stamp <= last:
                self._drop(k, "out_of_order", stamp)
                return []
            queue = self._queues[k]
            entry = (stamp, self._seq, item)
            self._seq += 1
            if not queue or stamp >= queue[-1][0]:
                queue.append(entry)
            else:
                insort(queue, entry)
            out = []
            if len(queue) > self.queue_size:
                out = self._match(final=True)  # a full queue stops waiting for what decides
                if len(queue) > self.queue_size:
                    self._drop(k, "queue_full", queue.popleft()[0])
            return out + self._match(final=False)

    def push_many(self, messages: Iterable[tuple[str, int, Any]]) -> list[PairedSet]:
        """:meth:`push` for each ``(stream, stamp_ns, item)``; all sets, in order."""
        out: list[PairedSet] = []
        for stream, stamp, item in messages:
            out.extend(self.push(stream, stamp, item))
        return out

    def last_emitted(self, stream: str) -> int | None:
        """The stamp of ``stream`` in the last emitted set (None before the first)."""
        with self._lock:
            return self._last[self._index[stream]]

    def restart(self) -> list[PairedSet]:
        """A clock step back: :meth:`flush`, then forget the last emitted stamps, so the
        stamps of the new clock (older than those) pair instead of being out of order. The
        counters go on."""
        out = self.flush()
        with self._lock:
            self._last = [None] * len(self.streams)
        return out

    def flush(self) -> list[PairedSet]:
        """End of input: emit what still pairs without waiting, drop the rest as
        ``"no_match"``. The pairer stays usable; stamps not newer than the last emitted
        ones are still ``"out_of_order"``."""
        with self._lock:
            out = self._match(final=True)
            for k, queue in enumerate(self._queues):
                while queue:
                    self._drop(k, "no_match", queue.popleft()[0])
            return out

    def _drop(self, k: int, reason: str, stamp: int) -> None:
        self._stats.dropped[reason][self.streams[k]] += 1
        if self._on_drop is not None:
            self._on_drop(self.streams[k], stamp, reason)

    def _match(self, final: bool) -> list[PairedSet]:
        out: list[PairedSet] = []
        queues = self._queues
        while all(queues):
            stamps = [q[0][0] for q in queues]
            oldest, newest = min(stamps), max(stamps)
            pivot = stamps.index(oldest)  # the first stream on ties
            if newest - oldest > self.slop_ns:
                self._drop(pivot, "no_match", queues[pivot].popleft()[0])
                continue
            closer = self._next_is_closer(stamps, pivot, final)
            if closer:  # the pivot's next message p' makes a tighter set S' ...
                alt = stamps.copy()
                alt[pivot] = queues[pivot][1][0]
                oldest_alt = alt.index(min(alt))
                # ... unless S' would give way in turn (its own oldest has a closer next)
                closer = oldest_alt != pivot and self._next_is_closer(alt, oldest_alt, final)
                if closer is False:  # S' stands: the pivot loses its partners to p'
                    self._drop(pivot, "no_match", queues[pivot].popleft()[0])
                    continue
            if closer is None:
                break  # a message not yet received decides: wait for it
            out.append(self._emit())
        return out

    def _next_is_closer(self, stamps: list[int], k: int, final: bool) -> bool | None:
        """Would stream ``k``'s next message, put in place of ``stamps[k]``, make a set of
        strictly smaller spread? ``None``: it may, but it has not arrived (and not final).
        Only a strictly oldest member can be improved this way (swapping any other member for
        a later message never shrinks the spread)."""
        rest = stamps[:k] + stamps[k + 1 :]
        if not rest or stamps[k] >= min(rest):
            return False
        queue = self._queues[k]
        if len(queue) < 2:
            return False if final else None
        nxt, low, high = queue[1][0], min(rest), max(rest)
        return max(nxt, high) - min(nxt, low) < high - stamps[k]

    def _emit(self) -> PairedSet:
        entries = [q.popleft() for q in self._queues]
        for k, (stamp, _, _) in enumerate(entries):
            self._last[k] = stamp
            queue = self._queues[k]
            while queue and queue[0][0] == stamp:  # a queued duplicate of what went out
                self._drop(k, "out_of_order", queue.popleft()[0])
        self._stats.emitted += 1
        return PairedSet(
            stamp_ns=entries[0][0],
            items={name: e[2] for name, e in zip(self.streams, entries)},
            stamps={name: e[0] for name, e in zip(self.streams, entries)},
        )


def _as_int(value: Any, what: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise PairingError(
            f"pairer: {what} must be an integer, got {type(value).__name__} {value!r}"
        ) from None
