"""``deal-sonar-adapter``: sonar intensity images -> the RGB-D topics the recorder records.

Node ``deal_sonar_adapter``. Subscribes a sonar ``sensor_msgs/Image`` (``input_topic``: mono8
as Ping360/Oculus drivers publish; 8UC1, mono16/16UC1 (scaled to 8 bit) and rgb8/bgr8 fan
renderings (converted to grey) are accepted too) and publishes, with the input's header:

- ``~/image``: the intensity (mono8, or rgb8 with ``output_encoding:=rgb8``),
- ``~/depth``: a depth-like range map (32FC1 metres with NaN = invalid, or 16UC1 mm, 0 =
  invalid), from :func:`deal_ros.core.sonar.sonar_to_rgbd` (geometry documented there).

``mode:=sidescan`` accumulates the incoming ping rows into a waterfall of ``waterfall_rows``
rows (newest on top) and publishes the waterfall for every input message. The geometry
parameters (ranges, aperture, threshold ...) may change at runtime (e.g. when the operator
changes the sonar range); invalid values are rejected with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image

from deal_ros.core.depth import metres_to_16uc1, metres_to_32fc1
from deal_ros.core.errors import DepthFormatError, ImageFormatError
from deal_ros.core.image_codec import image_to_numpy, numpy_to_image, to_rgb8
from deal_ros.core.sonar import SONAR_MODES, SonarGeometry, Waterfall, sonar_to_rgbd
from deal_ros.nodes._common import ThrottledLog, declare, declare_qos, qos_profile, run_node

__all__ = ["SonarAdapterNode", "intensity_u8", "main"]

_GEOMETRY = (
    "mode",
    "range_min_m",
    "range_max_m",
    "fov_deg",
    "apex",
    "layout",
    "threshold",
    "smooth_bins",
)


def intensity_u8(msg: Any, name: str = "sonar") -> np.ndarray:
    """An (H, W) uint8 intensity array from a mono8/8UC1, mono16/16UC1 (top 8 bits) or
    rgb8/bgr8 (grey) image."""
    enc = msg.encoding
    if enc in ("mono8", "8UC1"):
        return np.ascontiguousarray(image_to_numpy(msg, name=name))
    if enc in ("mono16", "16UC1"):
        return (image_to_numpy(msg, name=name) >> 8).astype(np.uint8)
    if enc in ("rgb8", "bgr8", "rgba8", "bgra8"):
        return to_rgb8(msg, name=name).mean(axis=2).astype(np.uint8)
    raise ImageFormatError(
        f"image '{name}': sonar encoding {enc!r} not supported; expected mono8, 8UC1, "
        "mono16, 16UC1, rgb8 or bgr8"
    )


class SonarAdapterNode(Node):
    """The sonar adapter (module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("deal_sonar_adapter", **kwargs)
        self._topic = declare(
            self, "input_topic", "/sonar/image", "Sonar image topic", read_only=True
        )
        declare(self, "mode", "fan", "Image geometry", choices=SONAR_MODES)
        declare(
            self,
            "range_min_m",
            0.0,
            "Range of the first bin / fan start (m)",
            value_range=(0.0, 1e4),
        )
        declare(
            self,
            "range_max_m",
            20.0,
            "Range of the last bin / fan radius (m)",
            value_range=(0.01, 1e4),
        )
        declare(self, "fov_deg", 130.0, "Fan aperture (degrees)", value_range=(1.0, 360.0))
        declare(
            self, "apex", "bottom", "Fan: edge holding the transducer", choices=("bottom", "top")
        )
        declare(
            self,
            "layout",
            "range_rows",
            "Polar: axis of range",
            choices=("range_rows", "range_cols"),
        )
        declare(self, "threshold", 40, "Echo threshold on 0..255 intensity", value_range=(0, 255))
        declare(
            self, "smooth_bins", 3, "Range bins averaged before thresholding", value_range=(1, 64)
        )
        rows = declare(
            self,
            "waterfall_rows",
            400,
            "Side-scan: pings kept",
            value_range=(1, 100000),
            read_only=True,
        )
        self._depth_encoding = declare(
            self,
            "depth_encoding",
            "32FC1",
            "Depth output encoding",
            choices=("32FC1", "16UC1"),
            read_only=True,
        )
        self._output_encoding = declare(
            self,
            "output_encoding",
            "mono8",
            "Intensity output encoding",
            choices=("mono8", "rgb8"),
            read_only=True,
        )
        self._geometry = self._read_geometry({})
        self._waterfall = Waterfall(rows)
        self._throttle = ThrottledLog(self.get_logger(), 5.0)
        qos = declare_qos(self, "qos", reliability="best_effort", depth=10)
        out_qos = qos_profile("reliable", 10)
        self._image_pub = self.create_publisher(Image, "~/image", out_qos)
        self._depth_pub = self.create_publisher(Image, "~/depth", out_qos)
        self.create_subscription(Image, self._topic, self._on_image, qos)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        g = self._geometry
        self.get_logger().info(
            f"ready: '{self._topic}' -> ~/image, ~/depth ({g.mode}, {g.range_min_m}-"
            f"{g.range_max_m} m)"
        )

    def _read_geometry(self, changes: dict[str, Any]) -> SonarGeometry:
        values = {name: changes.get(name, self.get_parameter(name).value) for name in _GEOMETRY}
        return SonarGeometry(**values)

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in _GEOMETRY}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            geometry = self._read_geometry(changes)
        except (DepthFormatError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if geometry.mode != self._geometry.mode:
            self._waterfall = Waterfall(self._waterfall.rows)
        self._geometry = geometry
        return SetParametersResult(successful=True)

    def _on_image(self, msg: Image) -> None:
        try:
            intensity = intensity_u8(msg, self._topic)
            if self._geometry.mode == "sidescan":
                intensity = self._waterfall.push(intensity)
            intensity, depth_m, valid = sonar_to_rgbd(intensity, self._geometry)
        except (ImageFormatError, DepthFormatError) as exc:
            self._throttle("input", f"dropped sonar image: {exc}")
            return
        if self._output_encoding == "rgb8":
            out = numpy_to_image(np.repeat(intensity[..., None], 3, axis=2), "rgb8", msg.header)
        else:
            out = numpy_to_image(intensity, "mono8", msg.header)
        if self._depth_encoding == "16UC1":
            depth = numpy_to_image(metres_to_16uc1(depth_m, valid), "16UC1", msg.header)
        else:
            depth = numpy_to_image(metres_to_32fc1(depth_m, valid), "32FC1", msg.header)
        self._image_pub.publish(out)
        self._depth_pub.publish(depth)


def main(args: list[str] | None = None) -> int:
    return run_node(SonarAdapterNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
