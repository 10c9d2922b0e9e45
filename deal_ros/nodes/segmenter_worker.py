"""Newest-frame-only processing for the segmenter node (plain threading; no rclpy, no torch).

``LatestSlot`` is a depth-1 queue: ``put`` replaces a frame that has not been taken yet and
counts it as dropped (stale), so the worker always runs on the newest frame and the latency
stays bounded (at most one frame being processed + one waiting) however fast frames arrive.
``Worker`` runs ``handle(item)`` on a thread of its own, off the executor's callback thread.
``LatencyStats`` keeps the last timings for the stats topic and the benches.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

__all__ = ["Frame", "LatencyStats", "LatestSlot", "Worker"]

T = TypeVar("T")


@dataclass
class Frame:
    """An input message and the monotonic time it arrived (``time.perf_counter()``)."""

    msg: Any
    arrived: float = field(default_factory=time.perf_counter)


class LatestSlot(Generic[T]):
    """Holds at most one item; ``put`` over an untaken item drops (and counts) the old one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Store ``item``; True when it replaced a frame nobody took (a stale drop)."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self.received += 1
            self.dropped += int(replaced)
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item (waiting up to ``timeout`` s); None on timeout or when closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake the worker and make ``take`` return None; the untaken item is dropped (and
        counted: it was received and will not be processed)."""
        with self._cond:
            self._closed = True
            if self._item is not None:
                self._item = None
                self.dropped += 1
            self._cond.notify_all()

    def reopen(self) -> None:
        """Take items again after :meth:`close` (a lifecycle node activated again); the
        counters go on."""
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed


class Worker(threading.Thread):
    """Takes items from a :class:`LatestSlot` and calls ``handle`` until stopped.

    Exceptions from ``handle`` go to ``on_error`` (the thread keeps running)."""

    def __init__(
        self,
        slot: LatestSlot,
        handle: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        name: str = "deal-segmenter-worker",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.slot = slot
        self.handle = handle
        self.on_error = on_error

    def run(self) -> None:
        while not self.slot.closed:
            item = self.slot.take(timeout=0.5)
            if item is None:
                continue
            try:
                self.handle(item)
            except Exception as exc:  # reported, never fatal: the node keeps running
                self.on_error(exc)

    def stop(self, timeout: float = 5.0) -> None:
        self.slot.close()
        if self.is_alive():
            self.join(timeout)


class LatencyStats:
    """Rolling timings (seconds) of the last ``window`` processed frames."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self.latency: deque[float] = deque(maxlen=window)  # arrival -> last publish
        self.wait: deque[float] = deque(maxlen=window)  # arrival -> worker picks it up
        self.run: deque[float] = deque(maxlen=window)  # session.run only
        self.processed = 0

    def add(self, arrived: float, started: float, run: float, done: float) -> None:
        with self._lock:
            self.latency.append(done - arrived)
            self.wait.append(started - arrived)
            self.run.append(run)
            self.processed += 1

    @staticmethod
    def _summary(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        arr = np.asarray(values) * 1000.0
        return {
            "mean_ms": round(float(arr.mean()), 3),
            "p50_ms": round(float(np.percentile(arr, 50)), 3),
            "p95_ms": round(float(np.percentile(arr, 95)), 3),
            "max_ms": round(float(arr.max()), 3),
        }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            latency, wait, run = list(self.latency), list(self.wait), list(self.run)
            processed = self.processed
        return {
            "processed": processed,
            "latency": self._summary(latency),
            "wait": self._summary(wait),
            "run": self._summary(run),
        }
