"""``deal-recorder``: record onboarding episodes (synchronized RGB-D, or sonar via the adapter).

Node ``deal_recorder``, a lifecycle (managed) node (:mod:`deal_ros.nodes.lifecycle`):

=============  ==============================================================================
configure      open the episode store: ``episodes_dir`` must be a folder this process can
               write (or be creatable in one; it is made at the first episode), else the
               transition fails with one line. Free space under ``min_free_mb`` is one warning
               line, not a failure (our choice: space may come back; ``start_episode`` checks
               it again and refuses below it)
activate       subscribe the inputs; ``start_episode`` is accepted from now on (and with
               ``autostart`` an episode starts at once)
deactivate     unsubscribe, then CLOSE the episode in progress: every frame already received,
               including those still waiting in the subscriptions' queues, is paired, written
               and the episode is finalized (``stop_reason: deactivate``), as a stop would.
               Our choice over keeping it open to resume: an episode is complete and readable
               the moment the node is not recording, and the next activation starts a new one
               (no gap inside an episode, which the upstream-loss count would read as loss)
cleanup        release the store; ``shutdown`` does whatever of the above is due
               (``stop_reason: shutdown``)
=============  ==============================================================================

``lifecycle_autostart`` (default true) configures and activates the node when it starts, so
``ros2 run`` and the launch files behave as a plain node; false waits for a lifecycle manager
(``ros2 lifecycle set /deal_recorder configure``, then ``activate``). It is not called
``autostart`` because that parameter already means "start an episode at once". While not
active, ``start_episode`` is refused with the lifecycle state, and ``~/status`` says it.

Health on ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, status ``deal_recorder:
recording``) every ``status_period_s``: lifecycle and episode state, Hz received per stream,
written and dropped, drops by reason (``dropped.*``, ``invalid.*``), upstream loss per stream,
bytes, the free disk space of ``episodes_dir``; WARN for upstream loss over 2 %, drops, no
input while recording or low disk, ERROR after a full disk or a failed configure.

Subscribes rgb, depth (and optionally camera_info) with ``raw=True``
so the CDR bytes go to disk untouched; validation and pairing run in
:class:`deal_ros.episodes.recording.RecordingSession`, writing on the episode writer's own thread
(:mod:`deal_ros.episodes.writer`), so a slow disk never stalls the executor.

Services ``~/start_episode`` (deal_ros/srv/StartEpisode: labels, name, optional operator
boxes stored in ``episode.yaml`` for box-supervised training) and ``~/stop_episode``; status
``~/status`` (deal_ros/msg/EpisodeStatus, transient local) at ``status_period_s`` and on every
state change. Topic names and QoS are read-only parameters; the others are read again at each
``start_episode``.

Stamps (:mod:`deal_ros.core.stamp_gate`, the rules and thresholds there): a frame whose stamp
is far from its stream's recent ones (``stamp_jump_ms``) is dropped alone (``stamp_jump``), one
that is further than ``max_clock_offset_s`` from the node clock (not under ``use_sim_time``;
1970, years ahead) is refused (``invalid.stamp``), and a real clock step (the next frames
follow the jump) is followed without losing a frame. Upstream loss
(:mod:`deal_ros.core.stream_loss`): frames each stream lost before it reached the recorder,
counted from the camera's stamps; the status (``upstream_loss``, and a hint in ``message`` over
2 %), the stop message and ``episode.yaml`` (``upstream``) report it.

Detector boxes: with ``boxes_topic`` set (e.g. ``/deal_segmenter/instances`` of a segmenter
running an instance bundle), each ``deal_ros/msg/InstanceArray`` received while recording adds
its instances of at least ``boxes.min_score`` whose class is one of the episode's labels to
``episode.yaml`` as boxes of the frame with that stamp (the detector copies the image header);
the others are counted and named in the stop message.

    ros2 run deal_ros deal-recorder --ros-args -p episodes_dir:=/data/episodes -p labels:="[mug]"
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image

from deal_ros.core.pairing import stamp_to_ns
from deal_ros.episodes.keyframes import KeyframeSelector
from deal_ros.episodes.meta import (
    UPSTREAM_HINT_FRACTION,
    EpisodeError,
    EpisodeMeta,
    upstream_line,
    validate_boxes,
    validate_labels,
)
from deal_ros.episodes.recording import RecordingSession
from deal_ros.episodes.store import EpisodeStore
from deal_ros.episodes.writer import AsyncEpisodeWriter
from deal_ros.msg import EpisodeStatus, InstanceArray
from deal_ros.nodes._common import (
    REALSENSE_TOPICS,
    ThrottledLog,
    declare,
    declare_qos,
    drain,
    qos_profile,
    run_node,
)
from deal_ros.nodes.lifecycle import ManagedNode
from deal_ros.nodes.recorder_health import RecorderHealth, check_episodes_dir
from deal_ros.srv import StartEpisode, StopEpisode

__all__ = ["LIFECYCLE_AUTOSTART", "RecorderNode", "main"]

LIFECYCLE_AUTOSTART = "lifecycle_autostart"  # `autostart` starts an episode (module doc)


class RecorderNode(ManagedNode):
    """The recorder (module doc). ``close()`` (shutdown) closes a running episode cleanly."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("deal_recorder", autostart_parameter=LIFECYCLE_AUTOSTART, **kwargs)
        self._declare_parameters()
        self._lock = threading.RLock()
        self._throttle = ThrottledLog(self.get_logger(), period_s=5.0)
        self._session: RecordingSession | None = None
        self._meta: EpisodeMeta | None = None
        self._state = EpisodeStatus.STATE_IDLE
        self._message = ""
        self._last: dict[str, Any] = {"frames": 0, "dropped": 0, "bytes": 0, "upstream": 0.0}
        self._box_counts: dict[str, int] = {}  # detector boxes of the episode, by fate
        self._subs: list[Any] = []
        self._store: EpisodeStore | None = None
        self._stop_reason = "deactivate"
        self.received = {"rgb": 0, "depth": 0}  # frames taken from the subscriptions
        self.drained = 0  # messages the last deactivate took from the subscriptions' queues
        self._status_pub = self.create_publisher(
            EpisodeStatus, "~/status", qos_profile("reliable", 10, "transient_local")
        )
        self.health = RecorderHealth(self)
        self.create_service(StartEpisode, "~/start_episode", self._on_start)
        self.create_service(StopEpisode, "~/stop_episode", self._on_stop)
        self.create_timer(self._status_period, self._on_timer)
        self.add_post_set_parameters_callback(self._post_set)
        self.publish_status()
        self.autostart_now()

    # ------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> None:
        d = self._declare_one
        d("episodes_dir", "./episodes", "Directory that receives one folder per episode")
        declare(
            self,
            "labels",
            None,
            "Labels used when start_episode gives none (e.g. [mug])",
            param_type=Parameter.Type.STRING_ARRAY,
        )
        d(
            "autostart",
            False,
            "Start an episode with 'labels' each time the node becomes active "
            "(lifecycle autostart: lifecycle_autostart)",
        )
        d("source", "realsense", "Recorded in episode.yaml: realsense | sonar | replay | generator")
        topics = {}
        for key, default in REALSENSE_TOPICS.items():
            what = "camera_info topic ('' = none)" if key == "camera_info" else f"{key} topic"
            topics[key] = declare(self, f"{key}_topic", default, f"Input {what}", read_only=True)
        self._topics = topics
        self._qos = declare_qos(self, "qos", reliability="reliable", depth=30)
        d("slop_ms", 15.0, "Max stamp difference of an rgb/depth pair (ms)", value_range=(0, 1000))
        d("pair_queue_size", 30, "Messages per stream waiting for a partner", value_range=(1, 1000))
        d("writer_queue", 30, "Pairs waiting for the disk before frames are dropped", (1, 10000))
        d("sync_interval_s", 0.5, "fsync period: bounds what a crash can lose (s)", (0.01, 60.0))
        d(
            "reserve_kb",
            1024,
            "Disk space kept back to close an episode on a full disk (KiB)",
            (0, 1 << 20),
        )
        d("min_free_mb", 500.0, "Refuse to start an episode below this free space (MB)", (0.0, 1e9))
        d("drop_invalid_depth", True, "Drop pairs whose depth has no valid pixel")
        d(
            "max_clock_offset_s",
            86400.0,
            "Refuse frames stamped further than this from the node clock (1970, years ahead; "
            "not under use_sim_time; 0 = no check)",
            (0.0, 1e10),
        )
        d(
            "stamp_jump_ms",
            250.0,
            "A stamp further than this from its stream's recent ones is a glitch, dropped "
            "alone, unless the next frames follow it (a clock step, followed)",
            (1.0, 1e7),
        )
        d(
            "nominal_rate_hz",
            0.0,
            "Camera rate for the upstream-loss count (0 = from camera_info or the stamps)",
            (0.0, 10000.0),
        )
        d(
            "keyframes.enabled",
            False,
            "Skip near-duplicate frames (keep changes and 1 frame per interval)",
        )
        d("keyframes.min_change", 0.03, "Keyframe: min thumbnail change in [0, 1]", (0.0, 1.0))
        d(
            "keyframes.max_interval_s",
            1.0,
            "Keyframe: keep one frame at least this often (s)",
            (0.01, 3600.0),
        )
        self._status_period = d("status_period_s", 1.0, "Status period (s)", (0.05, 60.0))
        self._topics_boxes = declare(
            self, "boxes_topic", "", "deal_ros/msg/InstanceArray topic whose boxes are stored "
            "per frame while recording ('' = none)", read_only=True,
        )  # fmt: skip
        d("boxes.min_score", 0.5, "Detector boxes: keep instances scoring at least this",
          (0.0, 1.0))  # fmt: skip

    def _declare_one(
        self, name: str, default: Any, description: str, value_range: Any = None
    ) -> Any:
        return declare(self, name, default, description, value_range=value_range)

    def _p(self, name: str) -> Any:
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ lifecycle
    def on_setup(self) -> None:
        """configure: open the episode store (module doc)."""
        self._store = self._open_store()
        self._set_state(EpisodeStatus.STATE_IDLE, "")
        self.get_logger().info(
            f"episodes in '{self._store.root.resolve()}'; rgb '{self._topics['rgb']}', "
            f"depth '{self._topics['depth']}'"
        )

    def _open_store(self) -> EpisodeStore:
        """The store of ``episodes_dir``, checked (DealError: one line); low disk: a warning."""
        store = EpisodeStore(check_episodes_dir(self._p("episodes_dir")))
        min_free = float(self._p("min_free_mb"))
        free_mb = store.free_bytes() / 1e6
        if free_mb < min_free:
            self.get_logger().warning(
                f"only {free_mb:.1f} MB free in '{store.root}': start_episode is refused "
                f"below min_free_mb={min_free:g} until space is freed"
            )
        return store

    def on_start(self) -> None:
        """activate: subscribe; start_episode accepted (``autostart``: an episode starts)."""
        self._subscribe()
        self.health.restart()
        self.publish_status()
        if self._p("autostart"):
            ok, message, _ = self.start_episode([], "")
            if not ok:
                self.get_logger().error(f"autostart: {message}")

    def on_stop(self) -> None:
        """deactivate: unsubscribe after taking what the subscriptions hold, then close the
        episode in progress with every frame received (module doc)."""
        subs, self._subs = self._subs, []
        session = self._session
        if session is not None:  # nothing new comes in: what is taken waits for the disk
            session.closing_wait_s = 10.0
        taken = self.drained = drain(subs)
        for sub in subs:
            self.destroy_subscription(sub)
        if self._session is not None:
            if taken:
                self.get_logger().info(
                    f"{self._stop_reason}: {taken} messages taken from the subscriptions' "
                    "queues before the episode is closed"
                )
            self.stop_episode(self._stop_reason)  # logs the episode's closing line
        self.publish_status()

    def on_teardown(self) -> None:
        """cleanup: release the store."""
        self._store = None
        self.publish_status()

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_reason = "shutdown"
        try:
            return super().on_shutdown(state)
        finally:
            self._stop_reason = "deactivate"

    def _post_set(self, params: Sequence[Parameter]) -> None:
        """A new ``episodes_dir`` after a failed autostart (a folder that was not writable)
        retries it."""
        retry = self.autostart_failed and self.lifecycle_state == "unconfigured"
        if retry and "episodes_dir" in {p.name for p in params}:
            self.autostart_now()

    # ------------------------------------------------------------------ subscriptions
    def _subscribe(self) -> None:
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        subs = [
            self.create_subscription(
                Image,
                self._topics[stream],
                lambda raw, s=stream: self._on_image(s, raw),
                self._qos,
                raw=True,
                event_callbacks=events,
            )
            for stream in ("rgb", "depth")
        ]
        if self._topics_boxes:
            subs.append(
                self.create_subscription(
                    InstanceArray, self._topics_boxes, self._on_boxes, QoSProfile(depth=30)
                )
            )
        if self._topics["camera_info"]:
            info_qos = QoSProfile(depth=5, reliability=self._qos.reliability)
            subs.append(
                self.create_subscription(
                    CameraInfo, self._topics["camera_info"], self._on_info, info_qos, raw=True
                )
            )
        self._subs = subs

    def _on_incompatible_qos(self, event: Any) -> None:
        self._throttle(
            "qos",
            "a publisher's QoS is incompatible with the input subscriptions "
            f"(qos.reliability={self._p('qos.reliability')}, policy id "
            f"{event.last_policy_kind}); try qos.reliability:=best_effort",
        )

    def _on_image(self, stream: str, raw: bytes) -> None:
        self.received[stream] += 1
        session = self._session
        if session is not None:
            session.on_image(stream, raw)

    def _on_info(self, raw: bytes) -> None:
        session = self._session
        if session is not None:
            session.on_camera_info(raw)

    def _on_boxes(self, msg: Any) -> None:
        """Detector boxes of one frame (module docstring)."""
        with self._lock:
            session, meta = self._session, self._meta
            if session is None or meta is None:
                return
            stamp = stamp_to_ns(msg.header.stamp)
            kept = []
            min_score = float(self._p("boxes.min_score"))
            for item in msg.instances:
                box = _box_dict(item.box, item.class_name, frames=[stamp])
                if item.score < min_score:
                    self._box_counts["low_score"] += 1
                elif item.class_name not in meta.labels:
                    self._box_counts["other_label"] += 1
                elif box["x1"] <= box["x0"] or box["y1"] <= box["y0"]:
                    self._box_counts["empty"] += 1
                else:
                    kept.append(box)
            self._box_counts["kept"] += len(kept)
            if kept:
                session.writer.add_boxes(kept)

    # ------------------------------------------------------------------ episodes
    def start_episode(
        self, labels: list[str], name: str, boxes: Sequence[dict[str, Any]] = ()
    ) -> tuple[bool, str, str]:
        """Start recording; ``(success, message, episode_id)``. ``boxes``: operator boxes
        (``{label, x0, y0, x1, y1}``, pixels) for the whole episode."""
        with self._lock:
            if self._session is not None:
                return False, f"already recording episode '{self._meta.episode_id}'", ""
            if self.lifecycle_state not in ("active", "activating"):  # autostart: activating
                return False, self._not_active(), ""
            try:
                labels = validate_labels(labels) or validate_labels(self._p_labels())
                if not labels:
                    raise EpisodeError(
                        "no labels: pass labels in the request or set the 'labels' parameter"
                    )
                boxes = validate_boxes(boxes, labels)
                store = self._current_store()
                store.check_space(int(self._p("min_free_mb") * 1e6))
                writer = store.create(
                    labels,
                    name or None,
                    source=self._p("source"),
                    source_topics={k: v for k, v in self._topics.items() if v},
                    sync_interval_s=self._p("sync_interval_s"),
                    reserve_bytes=self._p("reserve_kb") * 1024,
                    boxes=boxes,
                )
            except (EpisodeError, OSError) as exc:
                return False, f"cannot start: {exc}", ""
            self._meta = writer.meta
            self._box_counts = dict.fromkeys(("kept", "low_score", "other_label", "empty"), 0)
            async_writer = AsyncEpisodeWriter(
                writer, self._p("writer_queue"), on_closed=self._on_writer_closed
            )
            self._session = RecordingSession(
                async_writer,
                self._topics,
                slop_ns=int(self._p("slop_ms") * 1e6),
                pair_queue_size=self._p("pair_queue_size"),
                drop_invalid_depth=self._p("drop_invalid_depth"),
                keyframes=self._keyframes(),
                warn=self._throttle,
                **self._stamp_options(),
            )
            async_writer.start()
            self._set_state(EpisodeStatus.STATE_RECORDING, "")
        self.get_logger().info(
            f"recording episode '{writer.meta.episode_id}' labels {labels} to '{writer.directory}'"
        )
        return True, f"recording to {writer.directory}", writer.meta.episode_id

    def _not_active(self) -> str:
        """Why start_episode is refused while the node is not active."""
        state = self.lifecycle_state
        why = f" ({self.transition_error})" if self.transition_error else ""
        return (
            f"cannot start: the recorder is {state}{why}, not active: "
            f"`ros2 lifecycle set {self.get_fully_qualified_name()} "
            f"{'configure' if state == 'unconfigured' else 'activate'}`"
        )

    def _current_store(self) -> EpisodeStore:
        """The store opened at configure, opened again if ``episodes_dir`` changed since."""
        store = self._store
        if store is None or Path(self._p("episodes_dir")) != store.root:
            store = self._store = self._open_store()
        return store

    def _stamp_options(self) -> dict[str, Any]:
        """The stamp gate's and the upstream-loss counter's settings (module doc)."""
        offset = float(self._p("max_clock_offset_s"))
        rate = float(self._p("nominal_rate_hz"))
        return {
            "clock": lambda: self.get_clock().now().nanoseconds,
            "check_clock": offset > 0 and not self._p("use_sim_time"),
            "max_clock_offset_ns": int(offset * 1e9),
            "stamp_jump_ns": int(self._p("stamp_jump_ms") * 1e6),
            "nominal_period_ns": int(1e9 / rate) if rate > 0 else None,
        }

    def _p_labels(self) -> list[str]:
        try:
            return list(self._p("labels") or [])
        except Exception:  # declared without a value
            return []

    def _keyframes(self) -> KeyframeSelector | None:
        if not self._p("keyframes.enabled"):
            return None
        return KeyframeSelector(
            self._p("keyframes.min_change"), self._p("keyframes.max_interval_s")
        )

    def stop_episode(self, reason: str = "service") -> tuple[bool, str, EpisodeMeta | None]:
        """Stop recording; ``(success, message, metadata)``."""
        with self._lock:
            session = self._session
            if session is None:
                return False, "not recording", None
            self._set_state(EpisodeStatus.STATE_CLOSING, "")
        meta = session.finish(reason)
        with self._lock:
            self._session = None
            self._remember(session, meta)
            failed = session.writer.error is not None
            if not failed:
                self._set_state(EpisodeStatus.STATE_IDLE, "")
        text = (
            f"episode '{meta.episode_id}' closed: {meta.frames} frames, "
            f"{meta.dropped_total} dropped {_drops(meta.dropped)}"
        )
        if meta.clock_steps:
            text += f"; followed {meta.clock_steps} camera clock step(s)"
        upstream = upstream_line(meta.upstream)
        if upstream:
            text += f"; {upstream}"
        if self._topics_boxes:
            counts = self._box_counts
            text += (
                f"; detector boxes: {counts['kept']} kept, {counts['low_score']} under "
                f"boxes.min_score, {counts['other_label']} of other classes, "
                f"{counts['empty']} empty"
            )
        self.get_logger().info(text)
        return not failed, text if not failed else self._message, meta

    def _remember(self, session: RecordingSession, meta: EpisodeMeta) -> None:
        self._last = {
            "frames": meta.frames,
            "dropped": session.dropped_total(),
            "bytes": meta.bytes,
            "upstream": session.worst_upstream_loss(),
        }

    def _on_writer_closed(self, meta: EpisodeMeta, error: BaseException | None) -> None:
        """Writer thread: the episode ended. After an error (disk full) the node keeps
        running and refuses new episodes until there is space again."""
        if error is None:
            return
        with self._lock:
            session, self._session = self._session, None
            if session is not None:
                self._remember(session, meta)
            what = "disk full" if meta.stop_reason == "disk_full" else "write error"
            message = (
                f"{what}: episode '{meta.episode_id}' closed with {meta.frames} frames "
                f"({meta.error}); new episodes are refused until "
                f"{self._p('min_free_mb'):g} MB are free"
            )
            self._set_state(EpisodeStatus.STATE_ERROR, message)
        self.get_logger().error(message)

    # ------------------------------------------------------------------ status
    def _set_state(self, state: str, message: str) -> None:
        self._state, self._message = state, message
        self.publish_status()

    def status(self) -> EpisodeStatus:
        msg = EpisodeStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state, msg.message = self._state, self._message
        if not msg.message and not self.is_active and self.lifecycle_state != "activating":
            msg.message = self._not_active().removeprefix("cannot start: ")
        with self._lock:
            session, meta = self._session, self._meta
            if session is not None:
                counts = {
                    "frames": session.writer.frames,
                    "dropped": session.dropped_total(),
                    "bytes": session.writer.bytes_written,
                    "upstream": session.worst_upstream_loss(),
                }
                if not msg.message:
                    msg.message = _upstream_hint(session)
            else:
                counts = self._last
        if meta is not None and (session is not None or self._state != EpisodeStatus.STATE_IDLE):
            msg.episode_id, msg.labels = meta.episode_id, list(meta.labels)
            msg.path = str(Path(self._p("episodes_dir")) / meta.episode_id)
        msg.frames = min(int(counts["frames"]), 2**32 - 1)
        msg.dropped = min(int(counts["dropped"]), 2**32 - 1)
        msg.bytes = int(counts["bytes"])
        msg.upstream_loss = float(counts["upstream"])
        return msg

    def publish_status(self) -> None:
        try:
            self._status_pub.publish(self.status())
        except Exception as exc:  # context shutting down
            self.get_logger().debug(f"status not published: {exc}")

    def _on_timer(self) -> None:
        session = self._session
        if session is not None:
            session.sync_counts()
        self.publish_status()
        self.health.publish()

    # ------------------------------------------------------------------ services
    def _on_start(self, request: Any, response: Any) -> Any:
        boxes = [_box_dict(b.box, b.label) for b in request.boxes]
        ok, message, episode_id = self.start_episode(list(request.labels), request.name, boxes)
        response.success, response.message, response.episode_id = ok, message, episode_id
        if not ok:
            self.get_logger().warning(f"start_episode refused: {message}")
        return response

    def _on_stop(self, request: Any, response: Any) -> Any:
        ok, message, meta = self.stop_episode()
        response.success, response.message = ok, message
        if meta is not None:
            response.episode_id, response.frames = meta.episode_id, meta.frames
            response.path = str(Path(self._p("episodes_dir")) / meta.episode_id)
            response.dropped = min(int(meta.dropped_total), 2**32 - 1)
            response.upstream_loss = max(
                (float(s.get("loss", 0.0)) for s in meta.upstream.values()), default=0.0
            )
        return response


def _box_dict(roi: Any, label: str, frames: str | list[int] = "all") -> dict[str, Any]:
    """A ``sensor_msgs/RegionOfInterest`` as an ``episode.yaml`` box (x1, y1 exclusive)."""
    x0, y0 = int(roi.x_offset), int(roi.y_offset)
    return {"label": label, "x0": x0, "y0": y0, "x1": x0 + int(roi.width),
            "y1": y0 + int(roi.height), "frames": frames}  # fmt: skip


def _upstream_hint(session: RecordingSession, min_frames: int = 30) -> str:
    """The upstream-loss line for the status once a stream lost over 2 % of at least
    ``min_frames`` expected frames (fewer make a noisy fraction), else ""."""
    upstream = session.upstream_loss()
    worst = max(
        (s["loss"] for s in upstream.values() if s["received"] + s["missing"] >= min_frames),
        default=0.0,
    )
    return upstream_line(upstream) if worst > UPSTREAM_HINT_FRACTION else ""


def _drops(dropped: dict[str, int]) -> str:
    parts = [f"{k}={v}" for k, v in dropped.items() if v]
    return f"({', '.join(parts)})" if parts else ""


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
