"""One recording session: serialized rgb/depth messages in, validated pairs out to the episode
writer (no rclpy: the recorder node feeds it from its raw subscriptions, tests and benches
feed it directly).

Per message: parse the CDR header (:mod:`deal_ros.episodes.cdr_image`, a few microseconds, no
pixel copy), check the encoding and the layout, pass the stamp through the stream's
:class:`~deal_ros.core.stamp_gate.StampGate` (a glitch is dropped alone, a clock step is
followed, an implausible stamp refused: the rules are there), count what the stream lost
upstream (:class:`~deal_ros.core.stream_loss.StreamLoss`, the period from camera_info when it
comes), and push to the core :class:`~deal_ros.core.pairing.ApproxTimePairer` (restarted after
a clock step back). Per pair: same size for rgb and depth and for the whole episode, depth not
all invalid (every pixel counted: :func:`~deal_ros.core.depth.measured_fraction`), optional
keyframe selection, then the ORIGINAL serialized bytes go to the writer (no decode/re-encode).

Every rejection is reported through ``warn(key, line)`` (the node throttles it per key) and
counted per pair (:class:`~deal_ros.episodes.drop_ledger.PairDropLedger`: a bad colour frame
and its unpaired depth are one lost frame).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deal_ros.core.depth import measured_fraction
from deal_ros.core.errors import ImageFormatError
from deal_ros.core.image_codec import check_layout, image_spec, image_to_numpy
from deal_ros.core.pairing import DEFAULT_SLOP_NS, ApproxTimePairer, PairedSet
from deal_ros.core.stamp_gate import (
    DEFAULT_JUMP_NS,
    DEFAULT_MAX_CLOCK_OFFSET_NS,
    GateResult,
    StampGate,
)
from deal_ros.core.stream_loss import StreamLoss
from deal_ros.episodes.cdr_image import CdrImage, parse_image, parse_stamp
from deal_ros.episodes.drop_ledger import PairDropLedger
from deal_ros.episodes.keyframes import KeyframeSelector
from deal_ros.episodes.meta import DROP_KEYS, INVALID_KEYS, EpisodeMeta
from deal_ros.episodes.writer import AsyncEpisodeWriter

__all__ = ["DEPTH_ENCODINGS", "RGB_ENCODINGS", "RecordingSession"]

RGB_ENCODINGS = ("rgb8", "bgr8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
_ALLOWED = {"rgb": RGB_ENCODINGS, "depth": DEPTH_ENCODINGS}
_NS = 1e9
_PAIR_INVALID = ("size", "depth_all_invalid", "encoding")  # counted per pair directly


def _seconds(ns: int) -> str:
    return f"{ns / _NS:.3f} s"


def _layout_key(header: CdrImage, row_bytes: int) -> str:
    """The warning key of a bad layout, one per kind (the throttled log shows each kind)."""
    if header.height <= 0 or header.width <= 0:
        return "layout"  # zero size
    return "layout_step" if header.step < row_bytes else "layout_data"


@dataclass
class _Image:
    header: CdrImage
    raw: Any
    expected: tuple[int, int] | None = None  # stamps the stream's cadence expected (_expected)


class RecordingSession:
    """Validate, pair and queue one episode's frames (module doc).

    ``topics`` names the source topics (for log lines); ``warn(key, line)`` reports a dropped
    frame, one ``key`` per kind of problem. ``clock()`` gives the node clock in ns (ROS time,
    sim time included) for the stamp gate; ``check_clock`` (not under sim time) also refuses
    stamps further than ``max_clock_offset_ns`` from it. Without a clock (tests, offline
    feeding) the stamps are their own clock: backward jumps and steps are still told apart,
    a frame far ahead cannot be. ``nominal_period_ns`` fixes the camera period for the
    upstream-loss count (else camera_info's or the stream's own estimate)."""

    def __init__(
        self,
        writer: AsyncEpisodeWriter,
        topics: dict[str, str],
        *,
        slop_ns: int = DEFAULT_SLOP_NS,
        pair_queue_size: int = 30,
        drop_invalid_depth: bool = True,
        keyframes: KeyframeSelector | None = None,
        warn: Callable[[str, str], Any] | None = None,
        clock: Callable[[], int] | None = None,
        check_clock: bool = False,
        max_clock_offset_ns: int = DEFAULT_MAX_CLOCK_OFFSET_NS,
        stamp_jump_ns: int = DEFAULT_JUMP_NS,
        nominal_period_ns: int | None = None,
    ) -> None:
        self.writer = writer
        #: > 0 while the episode is being closed with what is still queued upstream (the
        #: recorder's deactivate): pairs wait this long for room in the writer's queue instead
        #: of being dropped as writer_behind (no new frame comes in meanwhile)
        self.closing_wait_s = 0.0
        self.topics = dict(topics)
        self.slop_ns = int(slop_ns)
        self.ledger = PairDropLedger(self.slop_ns)
        self.pairer = ApproxTimePairer(
            ("rgb", "depth"), slop_ns, pair_queue_size, on_drop=self.ledger.drop
        )
        self.drop_invalid_depth = drop_invalid_depth
        self.keyframes = keyframes
        self.warn = warn or (lambda key, line: None)
        self.clock = clock
        self.max_clock_offset_ns = int(max_clock_offset_ns) if check_clock else None
        self.gates = {
            s: StampGate(jump_ns=stamp_jump_ns, max_clock_offset_ns=self.max_clock_offset_ns)
            for s in ("rgb", "depth")
        }
        self.upstream = {s: StreamLoss(nominal_period_ns) for s in ("rgb", "depth")}
        self.info_loss = StreamLoss(nominal_period_ns)
        self.camera_info: Any = None
        self.size: tuple[int, int] | None = None
        self.encodings: dict[str, str] = {}
        self.pair_invalid = dict.fromkeys(_PAIR_INVALID, 0)
        self.keyframe_skips = 0
        self._valid_sum = 0.0
        self._valid_n = 0
        self._arrival: dict[str, int] = {}  # node clock at the last accepted frame, per stream
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- counters
    @property
    def invalid(self) -> dict[str, int]:
        """Invalid frames by reason (``INVALID_KEYS``), per pair."""
        message = self.ledger.by_prefix("invalid.")
        out = dict.fromkeys(INVALID_KEYS, 0)
        for key in INVALID_KEYS:
            out[key] = message.get(key, 0) + self.pair_invalid.get(key, 0)
        return out

    @property
    def clock_steps(self) -> int:
        return sum(g.steps for g in self.gates.values())

    def dropped(self) -> dict[str, int]:
        """Drops by reason (``DROP_KEYS``), counted per pair (module doc)."""
        ledger = self.ledger
        return {
            "no_match": ledger.count("no_match"),
            "out_of_order": ledger.count("out_of_order"),
            "queue_full": ledger.count("queue_full"),
            "invalid": sum(self.invalid.values()),
            "writer_behind": self.writer.writer_behind,
            "keyframe_skip": self.keyframe_skips,
            "stamp_jump": ledger.count("stamp_jump"),
        }

    def dropped_total(self) -> int:
        return sum(self.dropped().values())

    def depth_valid_fraction(self) -> float | None:
        return round(float(self._valid_sum) / self._valid_n, 4) if self._valid_n else None

    def upstream_loss(self) -> dict[str, dict[str, Any]]:
        """Per stream: frames received and missing upstream, the loss fraction, the period."""
        return {s: loss.as_dict() for s, loss in self.upstream.items()}

    def worst_upstream_loss(self) -> float:
        return max(loss.fraction for loss in self.upstream.values())

    def sync_counts(self) -> None:
        """Copy the counters into the episode metadata (saved at the next checkpoint)."""
        extra: dict[str, Any] = {"invalid": self.invalid}
        if self.size is not None:
            extra["size"] = {"height": self.size[0], "width": self.size[1]}
            extra["encodings"] = dict(self.encodings)
        extra["depth_valid_fraction"] = self.depth_valid_fraction()
        extra["upstream"] = self.upstream_loss()
        extra["clock_steps"] = self.clock_steps
        dropped = self.dropped()
        assert set(dropped) == set(DROP_KEYS)
        self.writer.update_counts(dropped, **extra)

    # ---------------------------------------------------------------- input
    def on_camera_info(self, raw: Any) -> None:
        self.camera_info = raw
        try:
            stamp = parse_stamp(raw)
        except ImageFormatError:
            return
        with self._lock:
            self.info_loss.add(stamp)
            self.upstream["rgb"].hint_period_ns = self.info_loss.period_ns

    def _reject(
        self,
        stream: str,
        stamp: int | None,
        reason: str,
        key: str,
        line: str,
        span: tuple[int, int] | None = None,
    ) -> None:
        self.ledger.drop(stream, stamp, f"invalid.{reason}", span)
        self._arrived(stream, stamp)
        self.warn(key, line)

    def _arrived(self, stream: str, stamp: int | None) -> None:
        """A frame that reached the recorder though it was dropped: not lost upstream."""
        with self._lock:
            if stamp is None:
                self.upstream[stream].add_unstamped()
            else:
                self.upstream[stream].add(stamp)

    def on_image(self, stream: str, raw: Any) -> None:
        """One serialized ``sensor_msgs/Image`` of ``stream`` ("rgb" or "depth")."""
        topic = self.topics.get(stream, stream)
        try:
            header = parse_image(raw, name=topic)
        except ImageFormatError as exc:
            line = f"dropped {stream} frame: {exc}"
            self._reject(stream, None, "malformed", f"{stream}:malformed", line)
            return
        stamp = header.stamp_ns
        if header.encoding not in _ALLOWED[stream]:  # before the codec: its list is longer
            self._reject(
                stream,
                stamp,
                "encoding",
                f"{stream}:encoding",
                f"dropped {stream} frame on '{topic}': encoding '{header.encoding}' is not "
                f"supported; expected one of {', '.join(_ALLOWED[stream])}",
            )
            return
        spec = image_spec(header.encoding, name=topic)  # every allowed encoding is known
        try:
            check_layout(spec, header.height, header.width, header.step, header.nbytes, name=topic)
        except ImageFormatError as exc:
            key = f"{stream}:{_layout_key(header, spec.row_bytes(max(header.width, 0)))}"
            self._reject(stream, stamp, "malformed", key, f"dropped {stream} frame: {exc}")
            return
        now = self.clock() if self.clock is not None else stamp
        with self._lock:
            image = _Image(header, raw, self._expected(stream, now))
            result = self.gates[stream].offer(stamp, now, image)
            if result.accepted:
                self._arrival[stream] = now
            self._gate_result(stream, topic, result)

    def _expected(self, stream: str, now: int) -> tuple[int, int] | None:
        """The stamps a frame arriving ``now`` may carry by its stream's cadence: from the one
        after the last accepted stamp (the next frame in order) to that stamp plus the periods
        since it arrived. What the ledger files a dropped stamp under
        (:class:`~deal_ros.episodes.drop_ledger.PairDropLedger`), so that its partner on the
        other stream, which carries the right stamp, is the same lost frame (an estimate from
        the arrival time alone moves with the transport's latency and the recorder's stalls)."""
        last, arrival = self.gates[stream].last, self._arrival.get(stream)
        period = self.upstream[stream].period_ns
        if last is None or arrival is None or not period:
            return None
        return last + period, last + period * max(1, round((now - arrival) / period))

    def _gate_result(self, stream: str, topic: str, result: GateResult) -> None:
        for stamp, item, reason, detail, estimate in result.dropped:
            span = item.expected or (estimate, estimate)
            self._stamp_drop(stream, topic, stamp, reason, detail, span)
        if result.step_ns:
            self.warn(
                f"{stream}:clock_step",
                f"{stream} on '{topic}': the camera clock stepped by {result.step_ns / _NS:+.3f}"
                f" s at stamp {_seconds(result.accepted[0][0])} ({len(result.accepted)} frames "
                "agree); following the new clock, no frame lost",
            )
            self.upstream[stream].restart()
            if stream == "rgb":
                self.info_loss.restart()
            first = result.accepted[0][0]
            last = self.pairer.last_emitted(stream)
            if last is not None and first <= last:  # the new clock is behind: start over
                for pair in self.pairer.restart():
                    self._pair(pair)
        period = self.upstream[stream].period_ns
        if period:  # instants of different streams within half a frame are one
            self.ledger.tolerance_ns = max(self.slop_ns, period // 2)
        for stamp, image in result.accepted:
            self.upstream[stream].add(stamp)
            for pair in self.pairer.push(stream, stamp, image):
                self._pair(pair)

    def _stamp_drop(
        self,
        stream: str,
        topic: str,
        stamp: int,
        reason: str,
        detail: str,
        span: tuple[int, int],
    ) -> None:
        """A frame the gate dropped; the ledger files it under ``span``, the stamps it may
        have had (its partners carry one of those, not the wrong one); the first of them,
        the next frame in order, is taken as arrived (not lost upstream)."""
        estimate = span[0]
        where = f"dropped {stream} frame on '{topic}': stamp {_seconds(stamp)}"
        if reason == "implausible":
            limit = (self.max_clock_offset_ns or 0) / _NS
            self._reject(
                stream,
                estimate,
                "stamp",
                f"{stream}:stamp_implausible",
                f"{where} is {detail} (more than max_clock_offset_s={limit:g}): the camera "
                "clock is not wall-clock time?",
                span,
            )
        elif reason == "out_of_order":
            self.ledger.drop(stream, stamp, "out_of_order")
            self._arrived(stream, stamp)
            self.warn(
                f"{stream}:backwards",
                f"{where} is {detail} (stamps going backwards)",
            )
        else:
            self.ledger.drop(stream, estimate, "stamp_jump", span)
            self._arrived(stream, estimate)
            self.warn(f"{stream}:stamp_jump", f"{where} is {detail}: a stamp glitch, dropped "
                      "alone; the episode goes on")  # fmt: skip

    # ---------------------------------------------------------------- pairs
    def _reject_pair(self, reason: str, key: str, line: str) -> None:
        self.pair_invalid[reason] += 1
        self.warn(key, line)

    def _pair(self, pair: PairedSet) -> None:
        rgb, depth = pair.items["rgb"], pair.items["depth"]
        rh, dh = rgb.header, depth.header
        if (rh.height, rh.width) != (dh.height, dh.width):
            self._reject_pair(
                "size",
                "pair:size",
                f"dropped pair at {_seconds(pair.stamp_ns)}: rgb is {rh.width}x{rh.height} but "
                f"depth is {dh.width}x{dh.height} (depth must be aligned to colour)",
            )
            return
        if not self._same_as_episode(rh, dh, pair.stamp_ns):
            return
        depth_arr = image_to_numpy(dh, name=self.topics.get("depth"))
        if not self._depth_ok(depth_arr, pair.stamp_ns):
            return
        if self.keyframes is not None:
            rgb_arr = image_to_numpy(rh, name=self.topics.get("rgb"))
            if not self.keyframes.consider(pair.stamp_ns, rgb_arr, depth_arr):
                self.keyframe_skips += 1
                return
        self.writer.submit(
            pair.stamp_ns, rgb.raw, depth.raw, self.camera_info, wait_s=self.closing_wait_s
        )

    def _same_as_episode(self, rh: CdrImage, dh: CdrImage, stamp_ns: int) -> bool:
        size, encodings = (rh.height, rh.width), {"rgb": rh.encoding, "depth": dh.encoding}
        if self.size is None:
            self.size, self.encodings = size, encodings
            return True
        if size != self.size:
            self._reject_pair(
                "size",
                "pair:episode_size",
                f"dropped pair at {_seconds(stamp_ns)}: size {size[1]}x{size[0]} differs from "
                f"this episode's {self.size[1]}x{self.size[0]}",
            )
            return False
        if encodings != self.encodings:
            self._reject_pair(
                "encoding",
                "pair:episode_encoding",
                f"dropped pair at {_seconds(stamp_ns)}: encodings {encodings} differ from "
                f"this episode's {self.encodings}",
            )
            return False
        return True

    def _depth_ok(self, depth: np.ndarray, stamp_ns: int) -> bool:
        fraction = measured_fraction(depth)
        if fraction == 0.0 and self.drop_invalid_depth:
            self._reject_pair(
                "depth_all_invalid",
                "pair:depth_invalid",
                f"dropped pair at {_seconds(stamp_ns)}: depth on "
                f"'{self.topics.get('depth')}' has no valid pixel (all 0/NaN)",
            )
            return False
        self._valid_sum += fraction
        self._valid_n += 1
        return True

    # ---------------------------------------------------------------- end
    def finish(self, stop_reason: str = "stopped", timeout: float = 60.0) -> EpisodeMeta:
        """Pair what is still pending, write it, close the episode; returns its metadata.
        Frames a stamp gate still holds (a jump not confirmed as a clock step) are glitches."""
        with self._lock:
            for stream, gate in self.gates.items():
                self._gate_result(stream, self.topics.get(stream, stream), gate.flush())
            for pair in self.pairer.flush():
                self._pair(pair)
        self.sync_counts()
        return self.writer.stop(timeout, stop_reason)
