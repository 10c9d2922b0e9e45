"""Node health on ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``), where ROS tools read
it (``ros2 topic echo /diagnostics``, rqt_robot_monitor, diagnostic_aggregator, Foxglove).

What a node reports is its own business; this module holds the shared parts:

* :class:`RateMeter`: counters turned into rates between two reports (frames/s received,
  processed, dropped);
* :func:`disk_values`: free space of a folder (the recorder's episodes, the segmenter's
  TensorRT engine cache);
* :class:`Diagnostics`: the publisher, one ``DiagnosticStatus`` per call named
  ``"<node name>: <task>"`` (diagnostic_updater's convention), every value a string.

Levels (diagnostic_msgs): OK, WARN (degraded: frames dropped, no input), ERROR (not working: no
model), STALE (not running: e.g. an unconfigured lifecycle node).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from deal_ros.nodes._common import qos_profile

__all__ = ["LEVELS", "TOPIC", "Diagnostics", "RateMeter", "disk_values"]

TOPIC = "/diagnostics"
LEVELS = {
    "ok": DiagnosticStatus.OK,
    "warn": DiagnosticStatus.WARN,
    "error": DiagnosticStatus.ERROR,
    "stale": DiagnosticStatus.STALE,
}


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class RateMeter:
    """Rates (per second) of growing counters between two calls of :meth:`rates`."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._at = time.monotonic()

    def rates(self, counters: Mapping[str, int]) -> dict[str, float]:
        now = time.monotonic()
        elapsed = max(now - self._at, 1e-9)
        out = {k: max(int(v) - self._last.get(k, 0), 0) / elapsed for k, v in counters.items()}
        self._last = {k: int(v) for k, v in counters.items()}
        self._at = now
        return out

    def reset(self, counters: Mapping[str, int]) -> None:
        """Start a new window now (e.g. after activation) from ``counters``."""
        self._last = {k: int(v) for k, v in counters.items()}
        self._at = time.monotonic()


def disk_values(path: str | os.PathLike[str], prefix: str = "disk") -> dict[str, str]:
    """``{prefix} free MB``, ``{prefix} free fraction`` and ``{prefix} path`` of the file
    system holding ``path`` (its nearest existing parent); ``{prefix} error`` if unreadable."""
    where = os.path.abspath(os.fspath(path))
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    try:
        usage = shutil.disk_usage(where)
    except OSError as exc:
        return {f"{prefix} path": where, f"{prefix} error": str(exc)}
    return {
        f"{prefix} path": where,
        f"{prefix} free MB": f"{usage.free / 1e6:.0f}",
        f"{prefix} free fraction": f"{usage.free / max(usage.total, 1):.3f}",
    }


class Diagnostics:
    """Publishes ``DiagnosticArray`` messages on ``/diagnostics`` for ``node`` (a plain
    publisher: health is reported in every lifecycle state)."""

    def __init__(self, node: Node, hardware_id: str = "") -> None:
        self.node = node
        self.hardware_id = hardware_id
        self.publisher = node.create_publisher(DiagnosticArray, TOPIC, qos_profile("reliable", 10))
        self.published = 0

    def status(
        self, task: str, level: str, message: str, values: Mapping[str, Any]
    ) -> DiagnosticStatus:
        return DiagnosticStatus(
            level=LEVELS[level],
            name=f"{self.node.get_name()}: {task}",
            message=message,
            hardware_id=self.hardware_id,
            values=[KeyValue(key=str(k), value=_text(v)) for k, v in values.items()],
        )

    def publish(self, *statuses: DiagnosticStatus) -> DiagnosticArray:
        msg = DiagnosticArray(status=list(statuses))
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(msg)
        self.published += 1
        return msg

    def destroy(self) -> None:
        self.node.destroy_publisher(self.publisher)
