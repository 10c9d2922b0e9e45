"""Drops counted per pair, not per message: one capture instant that did not become a frame
counts once, under the reason that explains it.

A colour frame with a bad encoding is dropped by validation, and its depth partner then finds
no colour frame and is dropped by the pairer as ``no_match``: two messages, one lost frame
(60 such pairs read "120 dropped" before). :class:`PairDropLedger` takes every message-level
drop with its stream and stamp and merges drops of different streams whose stamps lie within
``tolerance_ns`` (the pairing slop, or half the frame period when that is larger) into one
instant; the instant keeps the strongest reason (validation and stamp problems over queue
overflow over ``no_match``: what went wrong first). A message dropped before its stamp could
be read (not CDR at all) is matched with the next pairing drop (``no_match``,
``queue_full``) of another stream that has no stamped partner: its partner left alone.

Only recent instants are matched (the last :data:`_RECENT`); older ones are final.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

__all__ = ["PairDropLedger"]

_RECENT = 256
#: reason -> rank: the stronger reason names an instant whose messages were dropped for several
_RANK = {"no_match": 0, "queue_full": 1, "out_of_order": 2, "stamp_jump": 3}


def _rank(reason: str) -> int:
    return _RANK.get(reason, 4)  # validation ("invalid.<why>") explains the most


@dataclass
class _Instant:
    stamp: int | None
    reason: str
    streams: set[str] = field(default_factory=set)


class PairDropLedger:
    """Dropped instants by reason (module doc); thread-safe."""

    def __init__(self, tolerance_ns: int) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self.counts: dict[str, int] = {}
        self.messages = 0  # message-level drops taken, for the curious
        self._recent: deque[_Instant] = deque(maxlen=_RECENT)
        self._lock = threading.Lock()

    def drop(self, stream: str, stamp_ns: int | None, reason: str) -> None:
        """One message of ``stream`` dropped for ``reason`` (stamp None: not readable)."""
        with self._lock:
            self.messages += 1
            instant = self._partner(stream, stamp_ns, reason in ("no_match", "queue_full"))
            if instant is None:
                self._recent.append(_Instant(stamp_ns, reason, {stream}))
                self.counts[reason] = self.counts.get(reason, 0) + 1
                return
            instant.streams.add(stream)
            if instant.stamp is None:
                instant.stamp = stamp_ns
            if _rank(reason) > _rank(instant.reason):
                self.counts[instant.reason] -= 1
                self.counts[reason] = self.counts.get(reason, 0) + 1
                instant.reason = reason

    def _partner(self, stream: str, stamp: int | None, pairing: bool) -> _Instant | None:
        best, best_gap = None, None
        for instant in reversed(self._recent):
            if stream in instant.streams:
                continue
            if instant.stamp is None or stamp is None:
                if best is None and pairing and instant.stamp is None:
                    best, best_gap = instant, self.tolerance_ns + 1
                continue
            gap = abs(instant.stamp - stamp)
            if gap <= self.tolerance_ns and (best_gap is None or gap < best_gap):
                best, best_gap = instant, gap
        return best

    def count(self, reason: str) -> int:
        with self._lock:
            return self.counts.get(reason, 0)

    def by_prefix(self, prefix: str) -> dict[str, int]:
        """``{rest: n}`` of the reasons ``<prefix><rest>`` (e.g. ``invalid.``)."""
        with self._lock:
            return {k[len(prefix) :]: v for k, v in self.counts.items() if k.startswith(prefix)}
