"""``deal_segmenter``: live segmentation with a model bundle (thin rclpy shell over the runtime).

Subscribes ``image`` (rgb8 / bgr8 / rgba8 / bgra8 / mono8) and, with ``use_depth``, ``depth``
(16UC1 mm / 32FC1 m). Runs :class:`deal_ros.infer.Runtime` on the NEWEST frame only: the
subscription keeps one message, the callback drops it into a one-slot queue (a frame still
waiting when the next arrives is dropped and counted) and a worker thread does the inference,
so the executor never blocks and latency stays bounded under overload. ``~/stats`` counts
frames received by the callback, processed and dropped in that slot; a frame that another one
replaced inside the subscription's own DDS queue (depth ``qos.depth``) before the callback ran
is never seen by the node, so it cannot be counted (raise ``qos.depth`` to see every frame).
A frame's inputs are decoded once (:class:`~deal_ros.nodes.segmenter_frame.FrameInputs`: the
depth gate and the 3-D outputs share the depth decode) and each output array is converted to a
message once (:class:`~deal_ros.nodes.segmenter_frame.FrameOutputs`).

Publishes, all with the input image's header:

=====================  ======================================================================
``~/mask``             sensor_msgs/Image mono8, class ids (0 = background)
``~/cam``              sensor_msgs/Image 32FC1 in [0, 1]: CAM of the strongest present class
                       (all zeros when no class is present)
``~/cam/<class>``      32FC1 per class, with ``publish.cam_per_class``
``~/overlay``          sensor_msgs/Image rgb8: class colours blended over the image
``~/segmentation``     deal_ros/msg/Segmentation: class names (id order, background first),
                       scores (background: 1 - max class score, our choice) and the mask
``~/label_info``       std_msgs/String, transient local: JSON (also valid YAML) with class names
                       by id, palette, thresholds, model path; re-sent on every model change
``~/stats``            std_msgs/String JSON every ``stats_period`` s: received, processed,
                       dropped (stale), errors, latency / wait / session.run timings, provider
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
``depth.max_range`` (m, 0 = off: pixels farther or without depth become background),
``depth.slop`` (s), ``qos.reliability`` / ``qos.depth`` (input), ``qos.output_reliability``,
``stats_period``. Bad input or a missing model: one throttled log line, the node keeps running.
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
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from deal_ros.core.pairing import stamp_to_ns
from deal_ros.errors import DealError
from deal_ros.infer.instances import InstanceResult, pixel_box
from deal_ros.infer.postprocess import depth_keep
from deal_ros.infer.runtime import Runtime
from deal_ros.msg import Instance, InstanceArray, Segmentation
from deal_ros.nodes._common import QOS_RELIABILITY, ThrottledLog, declare, declare_qos, qos_profile
from deal_ros.nodes.cloud_outputs import CloudOutputs
from deal_ros.nodes.segmenter_frame import FrameInputs, FrameOutputs
from deal_ros.nodes.segmenter_worker import Frame, LatencyStats, LatestSlot, Worker

__all__ = ["NODE_NAME", "PARAMETERS", "SegmenterNode", "main"]

NODE_NAME = "deal_segmenter"
_RELOAD_KEYS = ("model", "providers", "fp16", "threads")
_THRESHOLDS = ("cam_threshold", "score_threshold", "nms_threshold", "mask_threshold",
               "overlay_alpha")  # fmt: skip
_UNIT = (-1.0, 1.0)
# The depth gate's valid depth: 0.1-10 m (depth_to_metres' default range, our choice for a
# RealSense D4xx); the 3-D outputs read cloud.depth_min / cloud.depth_max, by default the same
# range, so the frame's DepthImage decodes once for both.
_GATE_RANGE_M = (0.1, 10.0)

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
    "use_depth": (False, "subscribe to `depth` for the depth gate", {"read_only": True}),
    "depth.max_range": (0.0, "metres: pixels with farther or no depth become background "
                             "(0: off)", {"value_range": (0.0, 1000.0)}),
    "depth.slop": (0.05, "max |image - depth| stamp difference in seconds",
                   {"value_range": (0.0, 10.0)}),
    "qos.output_reliability": ("reliable", "reliability of the output publishers",
                               {"read_only": True, "choices": tuple(QOS_RELIABILITY)}),
    "stats_period": (1.0, "seconds between ~/stats messages (0: off)",
                     {"read_only": True, "value_range": (0.0, 3600.0)}),
}  # fmt: skip


def _topic_part(name: str) -> str:
    part = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return part if part[:1].isalpha() else f"c_{part}"


class SegmenterNode(Node):
    """The ``deal_segmenter`` node (see the module docstring)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description, options) in PARAMETERS.items():
            declare(self, name, default, description, **options)
        self.in_qos = declare_qos(self, "qos", reliability="best_effort", depth=1)
        self.cloud = CloudOutputs(self)  # 3-D outputs, off unless cloud.enabled
        self._log = ThrottledLog(self.get_logger(), period_s=5.0)
        self.runtime: Runtime | None = None
        self.model_error = ""
        self.errors: dict[str, int] = {"bad_input": 0, "no_model": 0, "failed": 0}
        self.stats = LatencyStats()
        self._pending: Runtime | None = None
        self._depth_lock = threading.Lock()
        self._depth_msg: Image | None = None
        self._cam_pubs: dict[str, Any] = {}  # class name -> ~/cam/<class> publisher
        self._cam_lock = threading.Lock()
        self._make_io()
        self._load_initial_model()
        self.add_on_set_parameters_callback(self._on_set)
        self.add_post_set_parameters_callback(self._post_set)
        self.slot: LatestSlot[Frame] = LatestSlot()
        self.worker = Worker(self.slot, self._process, self._on_worker_error)
        self.worker.start()

    # ------------------------------------------------------------------ setup
    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _make_io(self) -> None:
        self.out_qos = qos_profile(self._param("qos.output_reliability"), 1)
        latched = qos_profile("reliable", 1, "transient_local")
        self.image_sub = self.create_subscription(Image, "image", self._on_image, self.in_qos)
        self.depth_sub = None
        if self._param("use_depth"):
            self.depth_sub = self.create_subscription(Image, "depth", self._on_depth, self.in_qos)
        self.pubs = {
            "mask": self.create_publisher(Image, "~/mask", self.out_qos),
            "cam": self.create_publisher(Image, "~/cam", self.out_qos),
            "overlay": self.create_publisher(Image, "~/overlay", self.out_qos),
            "segmentation": self.create_publisher(Segmentation, "~/segmentation", self.out_qos),
            "instances": self.create_publisher(InstanceArray, "~/instances", self.out_qos),
        }
        self.label_pub = self.create_publisher(String, "~/label_info", latched)
        self.stats_pub = self.create_publisher(String, "~/stats", 10)
        period = float(self._param("stats_period"))
        self.stats_timer = self.create_timer(period, self.publish_stats) if period > 0 else None

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

    def _load_initial_model(self) -> None:
        try:
            self._install(self._runtime_for({}))
        except (DealError, ValueError) as exc:
            self.model_error = str(exc)
            self.get_logger().error(f"no model loaded: {exc}")
        if self.runtime is None and not self.model_error:
            self.model_error = "parameter 'model' is empty"
            self.get_logger().warning("no model yet: set the 'model' parameter to a bundle folder")

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
        self.publish_label_info()

    # ------------------------------------------------------------------ parameters
    def _on_set(self, params: Sequence[Parameter]) -> SetParametersResult:
        changed = {p.name: p.value for p in params}
        self._pending = None
        if not any(k in changed for k in _RELOAD_KEYS):
            return SetParametersResult(successful=True)
        try:
            self._pending = self._runtime_for(changed)
        except (DealError, ValueError) as exc:
            self.get_logger().error(f"parameter change rejected, model kept: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _post_set(self, params: Sequence[Parameter]) -> None:
        names = {p.name for p in params}
        if any(k in names for k in _RELOAD_KEYS):
            pending, self._pending = self._pending, None
            self._install(pending)
            if pending is None:
                self.model_error = "parameter 'model' is empty"
            return
        runtime = self.runtime
        if runtime is not None and names & set(_THRESHOLDS):
            runtime.set_thresholds(**{k: float(self._param(k)) for k in _THRESHOLDS})
            self.publish_label_info()

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg: Image) -> None:
        self.slot.put(Frame(msg))

    def _on_depth(self, msg: Image) -> None:
        with self._depth_lock:
            self._depth_msg = msg

    def _on_worker_error(self, exc: BaseException) -> None:
        self.errors["failed"] += 1
        self._log("failed", f"inference failed: {type(exc).__name__}: {exc}", "error")

    # ------------------------------------------------------------------ processing
    def _wanted(self, name: str) -> bool:
        if not self._param(f"publish.{name}"):
            return False
        return not self._param("publish.lazy") or self.pubs[name].get_subscription_count() > 0

    def _matched_depth(self, msg: Image) -> Image | None:
        """The newest depth image within ``depth.slop`` of ``msg``'s stamp, or None."""
        if self.depth_sub is None:
            return None
        with self._depth_lock:
            depth = self._depth_msg
        slop_ns = float(self._param("depth.slop")) * 1e9
        if (
            depth is None
            or abs(stamp_to_ns(depth.header.stamp) - stamp_to_ns(msg.header.stamp)) > slop_ns
        ):
            return None
        return depth

    def _keep(self, frame: FrameInputs) -> np.ndarray | None:
        """The depth gate's keep mask at the image's size, or None (gate off, or no depth
        close enough in time for this frame)."""
        max_range = float(self._param("depth.max_range"))
        if frame.depth is None or max_range <= 0:
            return None
        depth_m, valid = frame.depth.within(*_GATE_RANGE_M)
        return depth_keep(depth_m, valid, frame.rgb.shape[:2], max_range)

    def _process(self, arrival: Frame) -> None:
        started = time.perf_counter()
        runtime = self.runtime
        if runtime is None:
            self.errors["no_model"] += 1
            self._log("no_model", f"frame skipped, no model loaded: {self.model_error}", "error")
            return
        msg = arrival.msg
        try:
            frame = FrameInputs.decode(
                msg, self._matched_depth(msg), image_name=self.image_sub.topic_name
            )
            keep = self._keep(frame)
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
                               palette=bundle.palette, instances=out.cloud_labels)  # fmt: skip
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
                topic = f"~/cam/{_topic_part(name)}"
                self._cam_pubs[name] = self.create_publisher(Image, topic, self.out_qos)

    def _drop_class_cam_publishers(self, runtime: Runtime | None) -> None:
        """After a model swap: destroy the publishers of classes the new model lacks (all of
        them for an instance bundle, which has no CAMs)."""
        semantic = runtime is not None and not runtime.bundle.is_instance
        keep = set(runtime.bundle.classes) if semantic else set()
        with self._cam_lock:
            for name in [n for n in self._cam_pubs if n not in keep]:
                self.destroy_publisher(self._cam_pubs.pop(name))

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
    def label_info(self) -> dict[str, Any]:
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

    def publish_label_info(self) -> None:
        self.label_pub.publish(String(data=json.dumps(self.label_info())))

    def stats_snapshot(self) -> dict[str, Any]:
        snap = self.stats.snapshot()
        snap.update(
            received=self.slot.received,
            dropped=self.slot.dropped,
            errors=dict(self.errors),
            provider=self.runtime.provider if self.runtime else "",
            model=str(self.runtime.bundle.path) if self.runtime else "",
            model_error=self.model_error,
        )
        return snap

    def publish_stats(self) -> None:
        self.stats_pub.publish(String(data=json.dumps(self.stats_snapshot())))

    def close(self) -> None:
        """Stop the worker (the frame in progress finishes and is published)."""
        self.worker.stop()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


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
