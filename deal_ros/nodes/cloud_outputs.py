"""3-D outputs of ``deal_segmenter`` for manipulation planners (a part the node owns).

All with the DEPTH image's header (its frame is the colour optical frame for aligned depth):

=====================  ======================================================================
``~/object_cloud``     sensor_msgs/PointCloud2: x, y, z (float32, m), rgb (packed float32),
                       class_id (uint16) of the cleaned points of every class (ids > 0)
``~/objects``          deal_ros/msg/ObjectArray: per class centroid, oriented box (pose +
                       size), point count; published every processed frame (empty: no object)
``~/object_markers``   visualization_msgs/MarkerArray: a DELETEALL, then per class a CUBE (the
                       box, class colour, translucent) and a TEXT_VIEW_FACING label
=====================  ======================================================================

Needs depth aligned to colour and the colour camera's ``camera_info`` (subscribed here on
``camera_info``, remappable; or passed to :meth:`CloudOutputs.publish`). Without either, it says
so ONCE in the log and returns; the node keeps publishing its 2-D outputs. Parameters
(``cloud.*``, with descriptors) are in :data:`CLOUD_PARAMETERS`; the algorithms are
:func:`deal_ros.core.cloud.backproject` and :class:`deal_ros.core.cloud_cleaner.CloudCleaner`.

Wiring into a node (three lines)::

    self.cloud = CloudOutputs(self)                    # in __init__, after declaring params
    ...
    self.cloud.publish(depth, None, result.mask,       # per frame, after the 2-D outputs;
                       runtime.bundle.class_names,     # depth: the depth paired with this
                       rgb, palette=runtime.bundle.palette)  # image (None if none)

``depth`` is a depth ``sensor_msgs/Image`` or, to share one decode with other readers of the
same frame (the segmenter's depth gate), a :class:`~deal_ros.core.depth_image.DepthImage`.

``publish`` returns the :class:`~deal_ros.core.cloud_cleaner.CleanResult` (None when nothing was
published) and never raises for bad input: one throttled log line, counted in ``errors``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from deal_ros.core.cloud import Intrinsics, backproject
from deal_ros.core.cloud_cleaner import (
    BACKENDS,
    CleanConfig,
    CleanResult,
    CloudCleaner,
    ObjectInfo,
    as_instances,
)
from deal_ros.core.depth_image import DepthImage
from deal_ros.core.pointcloud2 import cloud_to_pointcloud2
from deal_ros.errors import DealError
from deal_ros.infer.bundle import default_palette
from deal_ros.msg import ObjectArray, ObjectSummary
from deal_ros.nodes._common import ThrottledLog, declare, qos_profile

__all__ = ["CLOUD_PARAMETERS", "CloudOutputs", "marker_array", "object_array"]

# name -> (default, description, declare() options)
CLOUD_PARAMETERS: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "cloud.enabled": (False, "publish ~/object_cloud, ~/objects and ~/object_markers (needs "
                             "depth aligned to colour and camera_info)", {"read_only": True}),
    "cloud.backend": ("auto", "cleaning backend: auto (open3d if importable, else numpy), "
                              "open3d or numpy", {"read_only": True, "choices": BACKENDS}),
    "cloud.stride": (2, "back-project every n-th pixel row and column (1: all)",
                     {"value_range": (1, 16)}),
    "cloud.depth_min": (0.1, "metres: nearer depth is invalid", {"value_range": (0.0, 1000.0)}),
    "cloud.depth_max": (10.0, "metres: farther depth is invalid", {"value_range": (0.0, 1000.0)}),
    "cloud.voxel_size": (0.005, "metres: voxel edge of the down-sampling",
                         {"value_range": (1e-4, 1.0)}),
    "cloud.remove_outliers": (True, "statistical outlier removal", {}),
    "cloud.outlier_neighbors": (20, "neighbours of the outlier statistic",
                                {"value_range": (1, 100)}),
    "cloud.outlier_std_ratio": (2.0, "outlier: mean neighbour distance > mean + ratio * std",
                                {"value_range": (0.01, 100.0)}),
    "cloud.largest_cluster": (True, "keep only the largest cluster of each class (cuts a "
                                    "mask leaking onto the background)", {}),
    "cloud.cluster_eps": (0.02, "metres: DBSCAN eps / grid cell of the clustering",
                          {"value_range": (1e-4, 10.0)}),
    "cloud.cluster_min_points": (10, "smallest cluster (points after down-sampling)",
                                 {"value_range": (1, 100000)}),
    "cloud.min_points": (20, "classes with fewer cleaned points are not reported",
                         {"value_range": (1, 100000)}),
    "cloud.lazy": (True, "skip the 3-D work while nobody subscribes to its outputs", {}),
}  # fmt: skip

_DEPTH_TOPIC = "depth"  # the segmenter's depth subscription, named in error lines
_ONCE = {
    "no_depth": "3-D outputs need depth aligned to colour: set use_depth:=true (depth_topic, "
    "or a remap of 'depth'); publishing 2-D outputs only",
    "no_camera_info": "3-D outputs need the colour camera's camera_info on '{topic}' (none "
    "received yet); publishing 2-D outputs only",
}


def _vec(values: Any, kind: type) -> Any:
    x, y, z = (float(v) for v in values)
    return kind(x=x, y=y, z=z)


def object_array(header: Any, objects: Sequence[ObjectInfo]) -> ObjectArray:
    """The ``~/objects`` message."""
    out = ObjectArray(header=header)
    for obj in objects:
        qx, qy, qz, qw = (float(v) for v in obj.quaternion)
        out.objects.append(
            ObjectSummary(
                class_id=int(obj.class_id),
                class_name=obj.class_name,
                instance_id=int(obj.instance_id),
                centroid=_vec(obj.centroid, Point),
                box_pose=Pose(
                    position=_vec(obj.center, Point),
                    orientation=Quaternion(x=qx, y=qy, z=qz, w=qw),
                ),
                box_size=_vec(obj.size, Vector3),
                point_count=int(obj.point_count),
            )
        )
    return out


def _colour(palette: Sequence[Sequence[int]], class_id: int, alpha: float) -> ColorRGBA:
    r, g, b = palette[class_id % len(palette)] if len(palette) else (255, 255, 255)
    return ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=alpha)


def marker_array(
    header: Any, objects: Sequence[ObjectInfo], palette: Sequence[Sequence[int]] | None = None
) -> MarkerArray:
    """The ``~/object_markers`` message: DELETEALL, then a box and a label per object (marker
    id: the instance id, or the class id for class-level objects; colour: the class's)."""
    palette = palette if palette is not None else default_palette(255)
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for obj in objects:
        qx, qy, qz, qw = (float(v) for v in obj.quaternion)
        key = int(obj.instance_id or obj.class_id)
        box = Marker(header=header, ns="deal_boxes", id=key, type=Marker.CUBE)
        box.action = Marker.ADD
        box.pose = Pose(
            position=_vec(obj.center, Point), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw)
        )
        box.scale = _vec(np.maximum(obj.size, 1e-3), Vector3)
        box.color = _colour(palette, obj.class_id, 0.4)
        text = Marker(header=header, ns="deal_labels", id=key)
        text.type, text.action = Marker.TEXT_VIEW_FACING, Marker.ADD
        above = np.asarray(obj.center, float) - [0.0, float(obj.size.max()) / 2 + 0.03, 0.0]
        text.pose = Pose(position=_vec(above, Point))  # optical frame: -y is up
        text.scale = Vector3(z=0.03)
        text.color = _colour(palette, obj.class_id, 1.0)
        sx, sy, sz = (float(v) * 100 for v in obj.size)
        text.text = f"{obj.class_name} {sx:.0f}x{sy:.0f}x{sz:.0f} cm ({obj.point_count} pts)"
        markers += [box, text]
    return MarkerArray(markers=markers)


class CloudOutputs:
    """The 3-D outputs of a segmenter node (module docstring).

    ``enabled``: None -> the ``cloud.enabled`` parameter. Parameters are declared on
    ``node`` in any case (``ros2 param list`` shows them); publishers and the camera_info
    subscription exist only when enabled, made by the constructor, or with ``start=False`` by
    :meth:`open` (configure) and :meth:`subscribe` (activate) of a lifecycle node, undone by
    :meth:`unsubscribe` and :meth:`close`. ``qos``: of the camera_info subscription (default
    best effort, depth 1: matches every publisher); ``out_qos``: of the three publishers."""

    def __init__(
        self,
        node: Node,
        *,
        enabled: bool | None = None,
        qos: Any = None,
        out_qos: Any = None,
        camera_info_topic: str = "camera_info",
        start: bool = True,
    ) -> None:
        self.node = node
        for name, (default, description, options) in CLOUD_PARAMETERS.items():
            if not node.has_parameter(name):
                declare(node, name, default, description, **options)
        self.enabled = bool(self._param("cloud.enabled") if enabled is None else enabled)
        self._log = ThrottledLog(node.get_logger(), period_s=5.0)
        self._said: set[str] = set()
        self.notices: list[str] = []  # every once-only line, in order (for tests and stats)
        self.errors = 0
        self.published = 0
        self._lock = threading.Lock()
        self._camera_info: Any = None
        self._qos = qos if qos is not None else qos_profile("best_effort", 1)
        self._out_qos = out_qos if out_qos is not None else qos_profile("reliable", 1)
        self._info_topic = camera_info_topic
        self.cleaner: CloudCleaner | None = None
        self.pubs: dict[str, Any] = {}
        self.info_sub = None
        if self.enabled and start:
            self.open()
            self.subscribe()

    # ------------------------------------------------------------------ lifecycle
    def open(self, create_publisher: Callable[..., Any] | None = None) -> None:
        """Make the cleaner and the three publishers (a lifecycle node's configure; done by
        the constructor unless ``start=False``). ``create_publisher``: e.g. the node's
        ``create_lifecycle_publisher`` (default: ``create_publisher``)."""
        if not self.enabled or self.pubs:
            return
        self.cleaner = CloudCleaner(
            backend=self._param("cloud.backend"), log=self.node.get_logger().info
        )
        make = create_publisher or self.node.create_publisher
        self.pubs = {
            "cloud": make(PointCloud2, "~/object_cloud", self._out_qos),
            "objects": make(ObjectArray, "~/objects", self._out_qos),
            "markers": make(MarkerArray, "~/object_markers", self._out_qos),
        }

    def subscribe(self) -> None:
        """Subscribe ``camera_info`` (activate)."""
        if self.enabled and self.info_sub is None:
            self.info_sub = self.node.create_subscription(
                CameraInfo, self._info_topic, self._on_camera_info, self._qos
            )

    def unsubscribe(self) -> None:
        """Stop the ``camera_info`` subscription and forget the last one (deactivate)."""
        if self.info_sub is not None:
            self.node.destroy_subscription(self.info_sub)
            self.info_sub = None
        with self._lock:
            self._camera_info = None

    def close(self, destroy_publisher: Callable[[Any], Any] | None = None) -> None:
        """Undo :meth:`open` and :meth:`subscribe` (cleanup)."""
        self.unsubscribe()
        destroy = destroy_publisher or self.node.destroy_publisher
        for pub in self.pubs.values():
            destroy(pub)
        self.pubs = {}
        self.cleaner = None

    @property
    def log_lines(self) -> list[str]:
        """The lines this part logged: the once-only notices, then the throttled per-frame
        ones (the last 100)."""
        return [*self.notices, *self._log.lines]

    @property
    def camera_info_topic(self) -> str:
        """The camera_info topic (resolved once subscribed)."""
        return self.info_sub.topic_name if self.info_sub is not None else self._info_topic

    # ------------------------------------------------------------------ inputs
    def _param(self, name: str) -> Any:
        return self.node.get_parameter(name).value

    def _on_camera_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._camera_info = msg

    @property
    def camera_info(self) -> CameraInfo | None:
        """The newest camera_info received on the subscription (None before the first)."""
        with self._lock:
            return self._camera_info

    def config(self) -> CleanConfig:
        """The cleaning parameters as they are now (parameters may change at run time)."""
        p = self._param
        return CleanConfig(
            voxel_size=float(p("cloud.voxel_size")),
            outlier_neighbors=int(p("cloud.outlier_neighbors")),
            outlier_std_ratio=float(p("cloud.outlier_std_ratio")),
            cluster_eps=float(p("cloud.cluster_eps")),
            cluster_min_points=int(p("cloud.cluster_min_points")),
            min_points=int(p("cloud.min_points")),
            remove_outliers=bool(p("cloud.remove_outliers")),
            largest_cluster=bool(p("cloud.largest_cluster")),
        )

    def wanted(self) -> bool:
        """Enabled, and (with ``cloud.lazy``) some output has a subscriber."""
        if not self.enabled:
            return False
        if not self._param("cloud.lazy"):
            return True
        return any(pub.get_subscription_count() > 0 for pub in self.pubs.values())

    def _once(self, key: str, **fields: str) -> None:
        if key in self._said:
            return
        self._said.add(key)
        line = _ONCE[key].format(**fields)
        self.notices.append(line)
        self.node.get_logger().warning(line)

    # ------------------------------------------------------------------ output
    def publish(
        self,
        depth_msg: Image | DepthImage | None,
        camera_info_msg: CameraInfo | None,
        class_mask: np.ndarray,
        class_names: Sequence[str] | Mapping[int, str],
        rgb: np.ndarray | None = None,
        *,
        palette: Sequence[Sequence[int]] | None = None,
        instances: tuple[np.ndarray, np.ndarray] | None = None,
        why_no_depth: str | None = None,
    ) -> CleanResult | None:
        """Back-project ``class_mask`` (class ids, the colour image's size) through
        ``depth_msg`` (aligned to colour; a message or a :class:`DepthImage`, decoded here
        unless already decoded) with ``camera_info_msg`` (None: the newest one
        subscribed), clean, summarise and publish. ``rgb``: (H, W, 3) uint8 point colours;
        ``palette``: class colours for the markers (default: the bundle default).
        ``instances``: (instance-id map, class id of each instance) of an instance bundle:
        one object per instance instead of one per class. ``why_no_depth``: why
        ``depth_msg`` is None, from a node that subscribes depth (throttled line); without
        it, the node is taken to have no depth subscription (once: "set use_depth:=true")."""
        if not self.wanted():
            return None
        info = camera_info_msg if camera_info_msg is not None else self.camera_info
        if depth_msg is None:
            if why_no_depth is None:
                self._once("no_depth")
            else:
                self._log("no_depth", f"3-D outputs skipped for this frame: {why_no_depth}")
            return None
        if info is None:
            self._once("no_camera_info", topic=self.camera_info_topic)
            return None
        depth = depth_msg
        if not isinstance(depth, DepthImage):
            depth = DepthImage(depth_msg, name=_DEPTH_TOPIC)
        try:
            labels = class_mask if instances is None else instances[0]
            result = self._compute(depth, info, labels, class_names, rgb)
            if instances is not None:
                result = as_instances(result, instances[1], class_names)
        except (DealError, ValueError) as exc:
            self.errors += 1
            self._log("cloud", f"3-D outputs skipped for this frame: {exc}", "error")
            return None
        header = depth.header
        self.pubs["cloud"].publish(cloud_to_pointcloud2(result.cloud, header))
        self.pubs["objects"].publish(object_array(header, result.objects))
        self.pubs["markers"].publish(marker_array(header, result.objects, palette))
        self.published += 1
        return result

    def _compute(
        self,
        depth: DepthImage,
        info: CameraInfo,
        class_mask: np.ndarray,
        class_names: Sequence[str] | Mapping[int, str],
        rgb: np.ndarray | None,
    ) -> CleanResult:
        depth_m, valid = depth.within(
            float(self._param("cloud.depth_min")) or None,
            float(self._param("cloud.depth_max")) or None,
        )
        intrinsics = Intrinsics.from_camera_info(info, name=self.camera_info_topic)
        cloud = backproject(
            depth_m,
            intrinsics,
            class_mask,
            valid=valid,
            rgb=rgb,
            stride=int(self._param("cloud.stride")),
            name=_DEPTH_TOPIC,
        )
        self.cleaner.config = self.config()
        return self.cleaner(cloud, class_names)
