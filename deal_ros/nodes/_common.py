"""Helpers shared by the deal_ros nodes: parameters with descriptors (ros2/demos style), QoS
from parameters, throttled per-reason logging, once-per-burst logging, input topic names (a
parameter, or a remap of the short name) and a ``main()`` wrapper with a clean Ctrl-C that sets
the shipped Fast DDS profile before rclpy starts (:mod:`deal_ros.nodes.transport`).
Lifecycle (managed) nodes: :mod:`deal_ros.nodes.lifecycle`; ``/diagnostics``:
:mod:`deal_ros.nodes.diagnostics`.

Nodes are thin: they read parameters, subscribe, call ``core``/``data`` functions and publish.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from deal_ros.errors import DealError
from deal_ros.nodes.transport import use_shipped_profile

__all__ = [
    "QOS_DURABILITY",
    "QOS_RELIABILITY",
    "REALSENSE_TOPICS",
    "BurstLog",
    "ThrottledLog",
    "declare",
    "declare_qos",
    "drain",
    "input_topic",
    "qos_profile",
    "run_node",
]

# The RealSense ROS 2 wrapper's topics (align_depth.enable:=true): the default inputs of the
# recorder and the segmenter, so both work bare next to a RealSense driver.
REALSENSE_TOPICS = {
    "rgb": "/camera/camera/color/image_raw",
    "depth": "/camera/camera/aligned_depth_to_color/image_raw",
    "camera_info": "/camera/camera/color/camera_info",
}

QOS_RELIABILITY = {
    "reliable": ReliabilityPolicy.RELIABLE,
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
}
QOS_DURABILITY = {
    "volatile": DurabilityPolicy.VOLATILE,
    "transient_local": DurabilityPolicy.TRANSIENT_LOCAL,
}


def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    *,
    read_only: bool = False,
    value_range: tuple[float, float] | None = None,
    choices: Sequence[str] | None = None,
    param_type: Parameter.Type | None = None,
) -> Any:
    """Declare ``name`` with a descriptor and return its value (after overrides).

    ``value_range`` becomes an integer/floating-point range (by the default's type);
    ``choices`` is listed in ``additional_constraints`` and checked here (one clear error).
    ``param_type`` declares a typed parameter without a default (value ``None`` if unset)."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if choices:
        descriptor.additional_constraints = "one of: " + ", ".join(choices)
    if value_range is not None:
        lo, hi = value_range
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise TypeError(f"parameter {name}: a range needs a numeric default")
        if isinstance(default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
            ]
    if param_type is not None:
        node.declare_parameter(name, param_type, descriptor)
        try:
            return node.get_parameter(name).value
        except rclpy.exceptions.ParameterUninitializedException:
            return None
    value = node.declare_parameter(name, default, descriptor).value
    if choices and value not in choices:
        raise DealError(f"parameter {name}: {value!r} is not one of {', '.join(choices)}")
    return value


def qos_profile(reliability: str, depth: int, durability: str = "volatile") -> QoSProfile:
    """A keep-last QoS profile from plain names (``reliable``/``best_effort``,
    ``volatile``/``transient_local``)."""
    if reliability not in QOS_RELIABILITY:
        choices = ", ".join(QOS_RELIABILITY)
        raise DealError(f"QoS reliability {reliability!r} is not one of {choices}")
    if durability not in QOS_DURABILITY:
        choices = ", ".join(QOS_DURABILITY)
        raise DealError(f"QoS durability {durability!r} is not one of {choices}")
    if depth < 1:
        raise DealError(f"QoS depth must be >= 1, got {depth}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=QOS_RELIABILITY[reliability],
        durability=QOS_DURABILITY[durability],
    )


def declare_qos(
    node: Node, prefix: str = "qos", reliability: str = "reliable", depth: int = 10
) -> QoSProfile:
    """Declare ``<prefix>.reliability`` and ``<prefix>.depth`` (read-only) and build the
    profile for the input subscriptions."""
    rel = declare(
        node,
        f"{prefix}.reliability",
        reliability,
        "Reliability of the input subscriptions: best_effort matches every publisher; "
        "reliable needs a reliable publisher",
        read_only=True,
        choices=tuple(QOS_RELIABILITY),
    )
    dep = declare(
        node,
        f"{prefix}.depth",
        depth,
        "History depth of the input subscriptions",
        read_only=True,
        value_range=(1, 1000),
    )
    return qos_profile(rel, dep)


class ThrottledLog:
    """Log one line per ``key`` at most every ``period_s`` seconds; the next line says how
    many were suppressed in between."""

    def __init__(self, logger: Any, period_s: float = 5.0) -> None:
        self.logger = logger
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()
        self.lines: deque[str] = deque(maxlen=100)  # the last lines logged (tests, stats)

    def __call__(self, key: str, message: str, level: str = "warning") -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            more = self._suppressed.pop(key, 0)
        suffix = f" ({more} more like this in the last {self.period_s:g} s)" if more else ""
        self.lines.append(message + suffix)
        getattr(self.logger, level)(message + suffix)
        return True


class BurstLog:
    """One line when a condition starts (per ``key``), one when it ends with how many times it
    held in between: a burst of bad frames is two lines, not one per frame nor one every few
    seconds. Thread-safe."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()
        self.lines: deque[str] = deque(maxlen=100)  # the last lines logged (tests, stats)

    def hit(self, key: str, message: str, level: str = "warning") -> bool:
        """The condition holds for one more item; the first of a burst logs ``message``."""
        with self._lock:
            first = key not in self._count
            self._count[key] = self._count.get(key, 0) + 1
        if first:
            self.lines.append(message)
            getattr(self.logger, level)(message)
        return first

    def clear(self, key: str, message: str = "", level: str = "info") -> int:
        """The condition no longer holds: log ``message`` (``{count}`` is replaced by the
        burst's length) if a burst was running; returns that length (0: none)."""
        with self._lock:
            count = self._count.pop(key, 0)
        if count and message:
            line = message.replace("{count}", str(count))
            self.lines.append(line)
            getattr(self.logger, level)(line)
        return count

    def active(self, key: str) -> bool:
        with self._lock:
            return key in self._count


def input_topic(node: Node, short: str, configured: str) -> str:
    """The topic an input subscribes: a remap of the short name (``-r image:=/my/image``, as
    before the topic parameters existed) wins; else ``configured`` (the ``*_topic`` parameter,
    e.g. the RealSense name), itself remappable by its full name."""
    remapped = node.resolve_topic_name(short)
    if remapped != node.resolve_topic_name(short, only_expand=True):
        return remapped
    return configured


def drain(subscriptions: Sequence[Any], limit: int = 10_000) -> int:
    """Take every message already waiting in ``subscriptions`` (their DDS reader queues) and
    run each one's own callback, one message per subscription in turn (as the executor takes
    them, so paired streams stay interleaved); returns how many were taken.

    A lifecycle node calls it in deactivate before destroying its subscriptions, from the
    executor thread that would otherwise have run those callbacks: a frame that reached the
    process is processed, not dropped with the subscription. ``limit`` bounds the work when
    a publisher keeps sending meanwhile."""
    taken = 0
    pending = [s for s in subscriptions if s is not None]
    while pending and taken < limit:
        still = []
        for sub in pending:
            with sub.handle:
                got = sub.handle.take_message(sub.msg_type, sub.raw)
            if got is None:
                continue
            sub.callback(got[0])
            taken += 1
            still.append(sub)
        pending = still
    return taken


def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """Init rclpy, build the node, spin until Ctrl-C / SIGTERM, then call the node's
    ``close()`` (if any) BEFORE the context goes down (so it can still publish; a lifecycle
    node shuts down there), destroy it and shut down. A :class:`DealError` while building the
    node is one logged line and exit 1. Before rclpy starts, the shipped Fast DDS profile is
    set unless the user chose a profile or another RMW (one log line when it is set)."""
    transport_note = use_shipped_profile()
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # rcl rejects the command line (e.g. a bad -p rule)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"cannot start: {first}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    code = 0
    if transport_note:
        level = "info" if "using the shipped" in transport_note else "warning"
        getattr(rclpy.logging.get_logger("deal_ros"), level)(transport_note)
    try:
        node = factory()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except DealError as exc:
        rclpy.logging.get_logger("deal_ros").error(str(exc))
        code = 1
    except (ParameterException, NameValidationException) as exc:  # e.g. -p stats_period:=0
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        rclpy.logging.get_logger("deal_ros").error(f"cannot start: {first}")
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
