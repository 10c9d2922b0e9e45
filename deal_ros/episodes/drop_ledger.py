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

A frame dropped for its stamp (implausible, a glitch) has no stamp to match by: it is filed
under a ``span`` of stamps it may have had by its stream's cadence, from the stamp after the
last accepted one (the next frame in order) to the one the time since that frame suggests
(measured: a recorder stalled by a busy CPU saw a 3-period gap before such a frame, and an
estimate from the gap alone split one lost frame into two). It matches a drop of another
stream whose stamp lies in that span (widened by the tolerance), the one nearest the start.

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
    span: tuple[int, int] | None = None  # stamps it may have had (module doc)

    def gap(self, stamp: int, span: tuple[int, int] | None) -> tuple[int, int]:
        """(distance between this instant's stamps and ``stamp`` or ``span``: 0 when they
        overlap; distance between their starts, which breaks ties: nearest the start)."""
        lo, hi = self.span or (self.stamp, self.stamp)
        other_lo, other_hi = span or (stamp, stamp)
        return max(other_lo - hi, lo - other_hi, 0), abs(other_lo - lo)


class PairDropLedger:
    """Dropped instants by reason (module doc); thread-safe."""

    def __init__(self, tolerance_ns: int) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self.counts: dict[str, int] = {}
        self.messages = 0  # message-level drops taken, for the curious
        self._recent: deque[_Instant] = deque(maxlen=_RECENT)
        self._lock = threading.Lock()

    def drop(
        self,
        stream: str,
        stamp_ns: int | None,
        reason: str,
        span: tuple[int, int] | None = None,
    ) -> None:
        """One message of ``stream`` dropped for ``reason`` (stamp None: not readable;
        ``span``: the stamps it may have had, its ``stamp_ns`` then the span's end)."""
        if span is not None and span[0] > span[1]:
            span = (span[1], span[0])
        with self._lock:
            self.messages += 1
            pairing = reason in ("no_match", "queue_full")
            instant = self._partner(stream, stamp_ns, pairing, span)
            if instant is None:
                self._recent.append(_Instant(stamp_ns, reason, {stream}, span))
                self.counts[reason] = self.counts.get(reason, 0) + 1
                return
            instant.streams.add(stream)
            if instant.stamp is None or (instant.span is not None and span is None):
                instant.stamp, instant.span = stamp_ns, span
            if _rank(reason) > _rank(instant.reason):
                self.counts[instant.reason] -= 1
                self.counts[reason] = self.counts.get(reason, 0) + 1
                instant.reason = reason

    def _partner(
        self, stream: str, stamp: int | None, pairing: bool, span: tuple[int, int] | None
    ) -> _Instant | None:
        best, best_gap = None, None
        for instant in reversed(self._recent):
            if stream in instant.streams:
                continue
            if instant.stamp is None or stamp is None:
                if best is None and pairing and instant.stamp is None:
                    best, best_gap = instant, (self.tolerance_ns + 1, 0)
                continue
            gap = instant.gap(stamp, span)
            if gap[0] <= self.tolerance_ns and (best_gap is None or gap < best_gap):
                best, best_gap = instant, gap
        return best

    def count(self, reason: str) -> int:
        with self._lock:
            return self.counts.get(reason, 0)

    def by_prefix(self, prefix: str) -> dict[str, int]:
        """``{rest: n}`` of the reasons ``<prefix><rest>`` (e.g. ``invalid.``)."""
        with self._lock:
            return {k[len(prefix) :]: v for k, v in self.counts.items() if k.startswith(prefix)}
