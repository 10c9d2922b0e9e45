"""``deal_segmenter``: live segmentation with a model bundle (thin rclpy shell over the runtime).

A lifecycle (managed) node (:mod:`deal_ros.nodes.lifecycle`): **configure** loads the model
(a model that does not load fails the transition with its one line; ``model`` empty: configured
without a model, frames are counted as ``no_model`` until one is set), **activate** subscribes
and publishes, **deactivate** unsubscribes and stops publishing (the frame in progress still
goes out), **cleanup** unloads the model, **shutdown** does whatever of those is due. With
``autostart`` (default true) the node configures and activates itself at start, so
``ros2 run`` and the launch files behave as a plain node; ``autostart:=false`` waits for a
lifecycle manager (``ros2 lifecycle set /deal_segmenter configure``: the model loads before
the camera starts). After a failed autostart, setting ``model`` retries it.

Subscribes ``image_topic`` (default the RealSense colour topic
``/camera/camera/color/image_raw``; rgb8 / bgr8 / rgba8 / bgra8 / mono8) and, with
``use_depth``, ``depth_topic`` (default ``/camera/camera/aligned_depth_to_color/image_raw``,
16UC1 mm / 32FC1 m): the recorder's defaults, so ``ros2 run deal_ros deal-segmenter -p
model:=...`` works bare next to a RealSense driver. A remap of the short names ``image``,
``depth`` and ``camera_info`` (``-r image:=/my/image``) still wins over the parameters.

Runs :class:`deal_ros.infer.Runtime` on the NEWEST frame only: the subscription keeps one
message, the callback drops it into a one-slot queue (a frame still waiting when the next
arrives is dropped and counted) and a worker thread does the inference, so the executor never
blocks and latency stays bounded under overload. ``~/stats`` and ``/diagnostics`` count frames
received by the callback, processed and dropped in that slot; a frame that another one replaced
inside the subscription's own DDS queue (depth ``qos.depth``) before the callback ran is never
seen by the node, so it cannot be counted (raise ``qos.depth`` to see every frame).
A frame's inputs are decoded once (:class:`~deal_ros.nodes.segmenter_frame.FrameInputs`: the
depth gate and the 3-D outputs share the depth decode) and each output array is converted to a
message once (:class:`~deal_ros.nodes.segmenter_frame.FrameOutputs`). The depth gate
(:class:`~deal_ros.nodes.segmenter_depth.DepthGate`) never stretches depth of another size
(the frame is dropped, one line) and says once per burst when the depth has no valid pixel or
none is paired with the image.

Publishes, all with the input image's header (outputs only while active):

=====================  ======================================================================
``~/mask``             sensor_msgs/Image mono8, class ids (0 = background)
``~/cam``              sensor_msgs/Image 32FC1 in [0, 1]: CAM of the strongest present class
                       (all zeros when no class is present)
``~/cam/<class>``      32FC1 per class, with ``publish.cam_per_class``
``~/overlay``          sensor_msgs/Image rgb8: class colours blended over the image
``~/segmentation``     deal_ros/msg/Segmentation: class names (id order, background first),
                       scores (background: 1 - max class score, our choice) and the mask
``~/class_names``      std_msgs/String, transient local, while a model is loaded (configured):
                       JSON (also valid YAML) with class names by id, palette, thresholds,
                       model path; re-sent on every model change. (Named ``~/label_info``
                       before: that name is vision_msgs' for ``vision_msgs/LabelInfo``, and a
                       String there clashes with every tool expecting that type.)
``~/stats``            std_msgs/String JSON every ``stats_period`` s, in every state: state,
                       received, processed, dropped (stale), errors, latency / wait /
                       session.run timings, provider
``/diagnostics``       diagnostic_msgs/DiagnosticArray every ``stats_period`` s, in every
                       state: status ``deal_segmenter: segmentation`` (level, a one-line
                       message) with rates (Hz received / processed / dropped), totals,
                       errors, latency, model, task, providers, topics, depth gate counts and,
                       with TensorRT, the free disk space of the engine cache
=====================  ======================================================================

An instance bundle (``deal export`` of a box run) is served too: ``~/instances``
(deal_ros/msg/InstanceArray: class, score, box and pixel count per instance, and a mono8
instance-id mask) joins the outputs; ``~/mask`` holds each pixel's instance class, ``~/overlay``
the tinted instances with their boxes and "name score", ``~/segmentation`` each class's best
instance score. ``~/cam`` and ``~/cam/<class>`` stay silent (the model has no CAMs). The depth
gate cuts instance masks; an instance left without a pixel is dropped. With ``cloud.enabled``,
``~/objects`` holds one object per instance (``instance_id`` set), not one per class.

Parameters (all with descriptors; ``ros2 param describe``): ``model`` (bundle folder; setting
it at run time loads the new bundle first and swaps it in, or rejects the change with the
reason and keeps the old model), ``providers`` (auto | tensorrt,cuda,cpu), ``fp16``,
``threads``, ``cam_threshold`` / ``score_threshold`` / ``overlay_alpha`` and, for instance
bundles, ``nms_threshold`` / ``mask_threshold`` (< 0: the bundle's),
``publish.{mask,cam,overlay,segmentation,instances,cam_per_class,lazy}``, ``use_depth``,
``image_topic`` / ``depth_topic`` / ``camera_info_topic``, ``depth.max_range`` (m, 0 = off:
pixels farther or without depth become background), ``depth.slop`` (s), ``qos.reliability`` /
``qos.depth`` (input), ``qos.output_reliability``, ``stats_period``, ``autostart``. Bad input
or a missing model: one throttled log line, the node keeps running.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from deal_ros.errors import DealError
from deal_ros.infer.instances import InstanceResult, pixel_box
from deal_ros.infer.providers import TENSORRT
from deal_ros.infer.runtime import Runtime
from deal_ros.msg import Instance, InstanceArray, Segmentation
from deal_ros.nodes._common import (
    QOS_RELIABILITY,
    REALSENSE_TOPICS,
    ThrottledLog,
    declare,
    declare_qos,
    input_topic,
    qos_profile,
)
from deal_ros.nodes.cloud_outputs import CloudOutputs
from deal_ros.nodes.diagnostics import Diagnostics, RateMeter, disk_values
from deal_ros.nodes.lifecycle import ManagedNode
from deal_ros.nodes.segmenter_depth import DepthGate, DepthInput, DepthSizeError
from deal_ros.nodes.segmenter_frame import FrameInputs, FrameOutputs
from deal_ros.nodes.segmenter_worker import Frame, LatencyStats, LatestSlot, Worker

__all__ = ["NODE_NAME", "PARAMETERS", "SegmenterNode", "main"]

NODE_NAME = "deal_segmenter"
_RELOAD_KEYS = ("model", "providers", "fp16", "threads")
_THRESHOLDS = ("cam_threshold", "score_threshold", "nms_threshold", "mask_threshold",
               "overlay_alpha")  # fmt: skip
_UNIT = (-1.0, 1.0)
# name -> (default, description, declare() options); qos.reliability / qos.depth come from
# deal_ros.nodes._common.declare_qos.
PARAMETERS: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "model": ("", "model bundle folder (model.onnx + model.yaml); set it at run time to swap "
                  "models (a bundle that does not load is rejected, the old one kept)", {}),
    "providers": ("auto", "ONNX Runtime providers: auto (TensorRT > CUDA > CPU) or a comma "
                          "list such as cuda,cpu", {}),
    "fp16": (False, "TensorRT fp16 engine (cached in <model>/engine/)", {}),
    "threads": (0, "ONNX Runtime intra-op threads (0: its default)", {"value_range": (0, 256)}),
    "cam_threshold": (-1.0, "background CAM score (< 0: the bundle's; semantic bundles)",
                      {"value_range": _UNIT}),
    "score_threshold": (-1.0, "class presence score; instance bundles: a candidate's class "
                              "probability (< 0: the bundle's)", {"value_range": _UNIT}),
    "nms_threshold": (-1.0, "instance bundles: box IoU above which the lower-scored of two "
                            "same-class instances goes (< 0: the bundle's)",
                      {"value_range": _UNIT}),
    "mask_threshold": (-1.0, "instance bundles: mask probability (< 0: the bundle's)",
                       {"value_range": _UNIT}),
    "overlay_alpha": (-1.0, "colour weight of ~/overlay (< 0: the bundle's)",
                      {"value_range": _UNIT}),
    "publish.mask": (True, "publish ~/mask (mono8 class ids)", {}),
    "publish.cam": (True, "publish ~/cam (32FC1 CAM of the strongest present class; "
                          "semantic bundles)", {}),
    "publish.overlay": (True, "publish ~/overlay (rgb8)", {}),
    "publish.segmentation": (True, "publish ~/segmentation (deal_ros/msg/Segmentation)", {}),
    "publish.instances": (True, "publish ~/instances (deal_ros/msg/InstanceArray; instance "
                                "bundles)", {}),
    "publish.cam_per_class": (False, "also publish ~/cam/<class> (32FC1) for every class", {}),
    "publish.lazy": (True, "skip computing outputs that have no subscriber", {}),
    "image_topic": (REALSENSE_TOPICS["rgb"], "input colour image topic (the recorder's "
                    "default; a remap of `image` wins)", {"read_only": True}),
    "depth_topic": (REALSENSE_TOPICS["depth"], "depth aligned to colour, subscribed with "
                    "use_depth (a remap of `depth` wins)", {"read_only": True}),
    "camera_info_topic": (REALSENSE_TOPICS["camera_info"], "colour camera_info for the 3-D "
                          "outputs (cloud.enabled; a remap of `camera_info` wins)",
                          {"read_only": True}),
    "use_depth": (False, "subscribe to depth_topic for the depth gate", {"read_only": True}),
    "depth.max_range": (0.0, "metres: pixels with farther or no depth become background "
                             "(0: off)", {"value_range": (0.0, 1000.0)}),
    "depth.slop": (0.05, "max |image - depth| stamp difference in seconds",
                   {"value_range": (0.0, 10.0)}),
    "qos.output_reliability": ("reliable", "reliability of the output publishers",
                               {"read_only": True, "choices": tuple(QOS_RELIABILITY)}),
    "stats_period": (1.0, "seconds between ~/stats and /diagnostics messages (0: off)",
                     {"read_only": True, "value_range": (0.0, 3600.0)}),
}  # fmt: skip


def _topic_part(name: str) -> str:
    part = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return part if part[:1].isalpha() else f"c_{part}"


class SegmenterNode(ManagedNode):
    """The ``deal_segmenter`` node (see the module docstring)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description, options) in PARAMETERS.items():
            declare(self, name, default, description, **options)
        self.in_qos = declare_qos(self, "qos", reliability="best_effort", depth=1)
        self.out_qos = qos_profile(self._param("qos.output_reliability"), 1)
        self.topics = {
            key: input_topic(self, key, self._param(f"{key}_topic"))
            for key in ("image", "depth", "camera_info")
        }
        # 3-D outputs, off unless cloud.enabled
        self.cloud = CloudOutputs(self, camera_info_topic=self.topics["camera_info"], start=False)
        self._log = ThrottledLog(self.get_logger(), period_s=5.0)
        self.runtime: Runtime | None = None
        self.model_error = "not configured"
        self.errors: dict[str, int] = {"bad_input": 0, "no_model": 0, "failed": 0,
                                       "depth_size": 0}  # fmt: skip
        self.stats = LatencyStats()
        self._pending: Runtime | None = None
        self._cam_pubs: dict[str, Any] = {}
        self._cam_lock = threading.Lock()
        self.pubs: dict[str, Any] = {}
        self.class_names_pub = None
        self.image_sub = self.depth_sub = None
        depth_topic = self.topics["depth"] if self._param("use_depth") else None
        self.depth_input = DepthInput(depth_topic, lambda: self._param("depth.slop"))
        self.gate = DepthGate(self.get_logger(), self.topics["image"], depth_topic)
        self.slot: LatestSlot[Frame] = LatestSlot()
        self.slot.close()  # opened on activate
        self.worker: Worker | None = None
        self.diagnostics = Diagnostics(self)
        self._rates = RateMeter()
        self._health_errors = 0  # errors counted at the last /diagnostics message
        self.stats_pub = self.create_publisher(String, "~/stats", 10)
        period = float(self._param("stats_period"))
        self.stats_timer = self.create_timer(period, self.publish_health) if period > 0 else None
        self.add_on_set_parameters_callback(self._on_set)
        self.add_post_set_parameters_callback(self._post_set)
        self.autostart_now()

    # ------------------------------------------------------------------ lifecycle
    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def on_setup(self) -> None:
        """configure: load the model (a model that does not load fails the transition),
        make the publishers."""
        try:
            runtime = self._runtime_for({})
        except (DealError, ValueError) as exc:
            self.model_error = str(exc)
            raise DealError(f"no model loaded: {exc}") from None
        self._make_publishers()
        self._install(runtime)
        if runtime is None:
            self.model_error = "parameter 'model' is empty"
            self.get_logger().warning("no model yet: set the 'model' parameter to a bundle folder")

    def on_start(self) -> None:
        """activate: subscribe the inputs and start the worker."""
        self.slot.reopen()
        self.worker = Worker(self.slot, self._process, self._on_worker_error)
        self.worker.start()
        self.image_sub = self.create_subscription(
            Image, self.topics["image"], self._on_image, self.in_qos
        )
        if self.depth_input.subscribed:
            self.depth_sub = self.create_subscription(
                Image, self.topics["depth"], self.depth_input.put, self.in_qos
            )
        self.cloud.subscribe()
        self._rates.reset(self._counters())
        depth = f", depth '{self.depth_sub.topic_name}'" if self.depth_sub else ""
        self.get_logger().info(f"subscribed: image '{self.image_sub.topic_name}'{depth}")

    def on_stop(self) -> None:
        """deactivate: unsubscribe, then let the frame in progress finish."""
        for sub in (self.image_sub, self.depth_sub):
            if sub is not None:
                self.destroy_subscription(sub)
        self.image_sub = self.depth_sub = None
        self.cloud.unsubscribe()
        self.depth_input.clear()
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def on_teardown(self) -> None:
        """cleanup: unload the model, destroy the publishers."""
        self.runtime = None
        self.model_error = "not configured"
        with self._cam_lock:
            for pub in self._cam_pubs.values():
                self.destroy_lifecycle_publisher(pub)
            self._cam_pubs.clear()
        for pub in self.pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self.pubs = {}
        if self.class_names_pub is not None:
            self.destroy_publisher(self.class_names_pub)
            self.class_names_pub = None
        self.cloud.close(self.destroy_lifecycle_publisher)

    def _output(self, kind: type, topic: str) -> Any:
        """A lifecycle publisher of an output; enabled at once when made while active (a
        model swap making ~/cam/<class> publishers)."""
        pub = self.create_lifecycle_publisher(kind, topic, self.out_qos)
        if self.lifecycle_state in ("active", "activating"):
            pub.on_activate(None)
        return pub

    def _make_publishers(self) -> None:
        self.pubs = {
            "mask": self._output(Image, "~/mask"),
            "cam": self._output(Image, "~/cam"),
            "overlay": self._output(Image, "~/overlay"),
            "segmentation": self._output(Segmentation, "~/segmentation"),
            "instances": self._output(InstanceArray, "~/instances"),
        }
        latched = qos_profile("reliable", 1, "transient_local")
        self.class_names_pub = self.create_publisher(String, "~/class_names", latched)
        self.cloud.open(self.create_lifecycle_publisher)

    # ------------------------------------------------------------------ model
    def _runtime_for(self, overrides: dict[str, Any]) -> Runtime | None:
        """A runtime for the current parameters with ``overrides``; None for model ''."""
        value = {k: overrides.get(k, self._param(k)) for k in (*_RELOAD_KEYS, *_THRESHOLDS)}
        if not value["model"]:
            return None
        return Runtime(
            value["model"],
            providers=value["providers"],
            fp16=bool(value["fp16"]),
            threads=int(value["threads"]),
            **{k: value[k] for k in _THRESHOLDS},
        )

    def _install(self, runtime: Runtime | None) -> None:
        self.runtime = runtime
        self.model_error = ""
        self._drop_class_cam_publishers(runtime)
        if runtime is None:
            return
        for notice in runtime.notes:
            self.get_logger().warning(notice)
        self.get_logger().info(f"model: {runtime.describe()}")
        if runtime.bundle.is_instance:
            self.get_logger().info(
                "instance bundle: publishing ~/instances; ~/cam and ~/cam/<class> stay silent "
                "(the model has no CAMs)"
            )
        elif self._param("publish.cam_per_class"):
            with self._cam_lock:
                self._class_cam_publishers(runtime)
        self.publish_class_names()

    # ------------------------------------------------------------------ parameters
    def _on_set(self, params: Sequence[Parameter]) -> SetParametersResult:
        changed = {p.name: p.value for p in params}
        self._pending = None
        if not any(k in changed for k in _RELOAD_KEYS) or not self.is_configured:
            return SetParametersResult(successful=True)  # unconfigured: configure loads it
        try:
            self._pending = self._runtime_for(changed)
        except (DealError, ValueError) as exc:
            self.get_logger().error(f"parameter change rejected, model kept: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _post_set(self, params: Sequence[Parameter]) -> None:
        names = {p.name for p in params}
        if any(k in names for k in _RELOAD_KEYS):
            if not self.is_configured:
                if self.autostart_failed and self.lifecycle_state == "unconfigured":
                    self.autostart_now()  # the model that failed autostart was replaced
                return
            pending, self._pending = self._pending, None
            self._install(pending)
            if pending is None:
                self.model_error = "parameter 'model' is empty"
            return
        runtime = self.runtime
        if runtime is not None and names & set(_THRESHOLDS):
            runtime.set_thresholds(**{k: float(self._param(k)) for k in _THRESHOLDS})
            self.publish_class_names()

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg: Image) -> None:
        self.slot.put(Frame(msg))

    def _on_worker_error(self, exc: BaseException) -> None:
        self.errors["failed"] += 1
        self._log("failed", f"inference failed: {type(exc).__name__}: {exc}", "error")

    # ------------------------------------------------------------------ processing
    def _wanted(self, name: str) -> bool:
        if not self._param(f"publish.{name}"):
            return False
        return not self._param("publish.lazy") or self.pubs[name].get_subscription_count() > 0

    def _process(self, arrival: Frame) -> None:
        started = time.perf_counter()
        runtime = self.runtime
        if runtime is None:
            self.errors["no_model"] += 1
            self._log("no_model", f"frame skipped, no model loaded: {self.model_error}", "error")
            return
        msg = arrival.msg
        depth_msg, why_no_depth = self.depth_input.match(msg)
        try:
            frame = FrameInputs.decode(msg, depth_msg, image_name=self.topics["image"],
                                       depth_name=self.topics["depth"])  # fmt: skip
            keep = self.gate.keep(frame.rgb.shape[:2], frame.depth, why_no_depth,
                                  float(self._param("depth.max_range")))  # fmt: skip
        except DepthSizeError:
            self.errors["depth_size"] += 1  # said by the gate, once per burst
            return
        except (DealError, ValueError) as exc:
            self.errors["bad_input"] += 1
            self._log("bad_input", f"bad input: {exc}", "error")
            return
        frame_step = self._detect if runtime.bundle.is_instance else self._segment
        out = frame_step(frame, runtime, keep)
        self._publish(runtime, out)
        if self.cloud.wanted():
            bundle = runtime.bundle
            self.cloud.publish(frame.depth, None, out.mask, bundle.class_names, frame.rgb,
                               palette=bundle.palette, instances=out.cloud_labels,
                               why_no_depth=why_no_depth if self.depth_input.subscribed
                               else None)  # fmt: skip
        self.stats.add(arrival.arrived, started, out.run_s, time.perf_counter())

    def _per_class(self, runtime: Runtime) -> bool:
        """``~/cam/<class>`` this frame (semantic bundles only: instance models have no CAMs)."""
        return bool(self._param("publish.cam_per_class")) and not runtime.bundle.is_instance

    def _segment(self, frame: FrameInputs, runtime: Runtime, keep: np.ndarray | None):
        """A semantic bundle's frame: its outputs, only those that will be published."""
        per_class = self._per_class(runtime)
        result = runtime.segment(
            frame.rgb,
            cam=self._wanted("cam") or per_class,
            overlay=self._wanted("overlay"),
            cam_classes=range(1, runtime.bundle.num_classes + 1) if per_class else (),
            keep=keep,
        )
        return FrameOutputs.of_semantic(frame.header, result)

    def _detect(self, frame: FrameInputs, runtime: Runtime, keep: np.ndarray | None):
        """An instance bundle's frame: its outputs (the class mask from the instances)."""
        result = runtime.detect(frame.rgb, overlay=self._wanted("overlay"), keep=keep)
        return FrameOutputs.of_instances(frame.header, result, runtime.bundle.num_classes)

    def _publish(self, runtime: Runtime, out: FrameOutputs) -> None:
        """Every wanted 2-D output of the frame (each image message made once, see
        :class:`~deal_ros.nodes.segmenter_frame.FrameOutputs`)."""
        if self._wanted("mask"):
            self.pubs["mask"].publish(out.mask_image)
        if self._wanted("cam") and out.cam is not None:
            self.pubs["cam"].publish(out.cam_image)
        if self._wanted("overlay") and out.overlay is not None:
            self.pubs["overlay"].publish(out.overlay_image)
        if self._wanted("segmentation"):
            self.pubs["segmentation"].publish(_segmentation(runtime, out))
        if out.instances is not None and self._wanted("instances"):
            self.pubs["instances"].publish(_instance_array(runtime, out))
        if self._per_class(runtime):
            self._publish_class_cams(runtime, out)

    def _class_cam_publishers(self, runtime: Runtime) -> None:
        """Make the ``~/cam/<class>`` publishers of this model's classes (call with the lock
        held, or before the worker runs)."""
        for name in runtime.bundle.classes:
            if name not in self._cam_pubs:
                self._cam_pubs[name] = self._output(Image, f"~/cam/{_topic_part(name)}")

    def _drop_class_cam_publishers(self, runtime: Runtime | None) -> None:
        """After a model swap: destroy the publishers of classes the new model lacks (all of
        them for an instance bundle, which has no CAMs)."""
        semantic = runtime is not None and not runtime.bundle.is_instance
        keep = set(runtime.bundle.classes) if semantic else set()
        with self._cam_lock:
            for name in [n for n in self._cam_pubs if n not in keep]:
                self.destroy_lifecycle_publisher(self._cam_pubs.pop(name))

    def _publish_class_cams(self, runtime: Runtime, out: FrameOutputs) -> None:
        with self._cam_lock:  # a model swap may drop publishers meanwhile
            if runtime is not self.runtime:
                return  # swapped while this frame ran: its classes are gone
            self._class_cam_publishers(runtime)
            for k, name in enumerate(runtime.bundle.classes, start=1):
                heat = out.class_cam_image(k) if name in self._cam_pubs else None
                if heat is not None:
                    self._cam_pubs[name].publish(heat)

    # ------------------------------------------------------------------ reporting
    def class_info(self) -> dict[str, Any]:
        """The ``~/class_names`` content."""
        runtime = self.runtime
        if runtime is None:
            return {"model": "", "error": self.model_error}
        b = runtime.bundle
        info = {
            "model": str(b.path),
            "task": b.task,
            "class_names": b.class_names,
            "palette": [list(map(int, row)) for row in b.palette],
            "mask_encoding": "mono8 class ids, 0 = background",
            "score_threshold": runtime.score_threshold,
            "provider": runtime.provider,
        }
        if b.is_instance:
            spec = runtime.instance
            info["instances_encoding"] = (
                "~/instances: deal_ros/msg/InstanceArray, mask mono8 instance ids, 0 = none"
            )
            info.update(nms_threshold=spec.nms_threshold, mask_threshold=spec.mask_threshold)
        else:
            info["cam_threshold"] = runtime.cam_threshold
        return info

    def publish_class_names(self) -> None:
        if self.class_names_pub is not None:
            self.class_names_pub.publish(String(data=json.dumps(self.class_info())))

    def _counters(self) -> dict[str, int]:
        return {
            "received": self.slot.received,
            "processed": self.stats.processed,
            "dropped": self.slot.dropped,
        }

    def stats_snapshot(self) -> dict[str, Any]:
        snap = self.stats.snapshot()
        snap.update(
            state=self.lifecycle_state,
            received=self.slot.received,
            dropped=self.slot.dropped,
            depth_received=self.depth_input.received,
            errors=dict(self.errors),
            provider=self.runtime.provider if self.runtime else "",
            model=str(self.runtime.bundle.path) if self.runtime else "",
            model_error=self.model_error,
        )
        return snap

    def publish_stats(self) -> None:
        self.stats_pub.publish(String(data=json.dumps(self.stats_snapshot())))

    def publish_health(self) -> None:
        """The timer: ``~/stats`` and ``/diagnostics``."""
        self.publish_stats()
        self.publish_diagnostics()

    def health(self) -> tuple[str, str, dict[str, Any]]:
        """``(level, message, values)`` of the ``/diagnostics`` status (rates since the last
        call)."""
        snap = self.stats.snapshot()
        rates = self._rates.rates(self._counters())
        errors = sum(self.errors.values())
        state, runtime = self.lifecycle_state, self.runtime
        values: dict[str, Any] = {
            "state": state,
            "received Hz": rates["received"],
            "processed Hz": rates["processed"],
            "dropped Hz": rates["dropped"],
            **{k: v for k, v in self._counters().items()},
            **{f"errors {k}": v for k, v in self.errors.items()},
            **{f"depth gate {k}": v for k, v in self.gate.counts.items()},
            "latency p50 ms": snap["latency"].get("p50_ms", ""),
            "latency p95 ms": snap["latency"].get("p95_ms", ""),
            "session.run p50 ms": snap["run"].get("p50_ms", ""),
            "model": str(runtime.bundle.path) if runtime else "",
            "task": runtime.bundle.task if runtime else "",
            "provider": runtime.provider if runtime else "",
            "providers": ",".join(runtime.providers) if runtime else self._param("providers"),
            "image topic": self.topics["image"],
            "depth topic": self.depth_input.topic or "",
        }
        if runtime is not None and TENSORRT in runtime.providers:
            values.update(disk_values(runtime.bundle.engine_dir, "engine cache disk"))
        if state == "unconfigured":
            if self.transition_error:
                return "error", f"unconfigured: {self.transition_error}", values
            return "stale", "unconfigured: waiting for configure", values
        if state == "finalized":
            return "stale", "finalized", values
        if runtime is None:
            return "error", f"no model loaded: {self.model_error}", values
        if state != "active":
            return "ok", f"{state}: model loaded, not processing", values
        if rates["received"] == 0:
            return "warn", f"no frames received on '{self.topics['image']}'", values
        message = (
            f"processing {rates['processed']:.1f} Hz of {rates['received']:.1f} Hz received "
            f"({rates['dropped']:.1f} Hz dropped: newest frame only)"
        )
        self._health_errors, before = errors, self._health_errors
        if errors > before:
            return "warn", f"{message}; {errors - before} frames failed (see ~/stats)", values
        return "ok", message, values

    def publish_diagnostics(self) -> None:
        level, message, values = self.health()
        self.diagnostics.publish(self.diagnostics.status("segmentation", level, message, values))


def _segmentation(runtime: Runtime, frame: FrameOutputs) -> Segmentation:
    """``frame.scores``: (K,) per class (image-level probabilities, or an instance bundle's
    best instance score per class); background 1 - max (our choice). The mask is the very
    image message of ``~/mask``."""
    out = Segmentation()
    out.header = frame.header
    out.class_names = runtime.bundle.class_names
    scores = frame.scores
    background = 1.0 - float(scores.max()) if scores.size else 1.0
    out.class_scores = [background, *map(float, scores)]
    out.mask = frame.mask_image
    return out


def _instance_array(runtime: Runtime, frame: FrameOutputs) -> InstanceArray:
    """The ~/instances message (255 instances at most: ids are mono8)."""
    result: InstanceResult = frame.instances
    ids = frame.ids
    out = InstanceArray()
    out.header = frame.header
    out.class_names = runtime.bundle.class_names
    n = min(len(result), 255)
    pixels = np.count_nonzero(result.masks[:n], axis=(1, 2))
    for i in range(n):
        item = Instance()
        item.id = i + 1
        item.class_id = int(result.classes[i])
        item.class_name = out.class_names[item.class_id]
        item.score = float(result.scores[i])
        left, top, right, bottom = pixel_box(result.boxes[i], ids.shape)
        item.box.x_offset, item.box.y_offset = left, top
        item.box.width, item.box.height = right - left, bottom - top
        item.pixel_count = int(pixels[i])
        out.instances.append(item)
    out.mask = frame.ids_image
    return out


def main(args: Sequence[str] | None = None) -> int:
    """``deal-segmenter`` / ``ros2 run deal_ros deal-segmenter``."""
    from deal_ros.nodes._common import run_node

    return run_node(SegmenterNode, args)


if __name__ == "__main__":
    sys.exit(main())
