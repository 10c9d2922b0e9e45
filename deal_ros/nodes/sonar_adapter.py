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

A lifecycle (managed) node (:mod:`deal_ros.nodes.lifecycle`): **configure** checks the
geometry and makes the outputs, **activate** subscribes, **deactivate** converts and publishes
what the subscription already holds, then unsubscribes, **cleanup** drops the outputs and the
waterfall. ``autostart`` (default true, as the segmenter's) configures and activates at start,
so ``ros2 run`` and the onboarding launch file behave as a plain node.

Health on ``/diagnostics`` (status ``deal_sonar_adapter: sonar``) every ``stats_period`` s:
lifecycle state, Hz received / published / dropped, drops by reason (``bad_image``: an
encoding or layout the adapter cannot read; ``bad_geometry``: e.g. a side-scan ping of another
width), input loss counted from the sonar's stamps (:mod:`deal_ros.core.stream_loss`;
counted afresh when the geometry changes, since the ping rate follows the range), the geometry
and the topics. WARN on drops, on input loss over 2 %, or on no input while active.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import Image

from deal_ros.core.depth import metres_to_16uc1, metres_to_32fc1
from deal_ros.core.errors import DepthFormatError, ImageFormatError
from deal_ros.core.image_codec import image_to_numpy, numpy_to_image, to_rgb8
from deal_ros.core.pairing import stamp_to_ns
from deal_ros.core.sonar import SONAR_MODES, SonarGeometry, Waterfall, sonar_to_rgbd
from deal_ros.core.stream_loss import StreamLoss
from deal_ros.episodes.meta import UPSTREAM_HINT_FRACTION
from deal_ros.nodes._common import (
    ThrottledLog,
    declare,
    declare_qos,
    drain,
    qos_profile,
    run_node,
)
from deal_ros.nodes.diagnostics import Diagnostics, RateMeter
from deal_ros.nodes.lifecycle import ManagedNode

__all__ = ["SonarAdapterNode", "intensity_u8", "main"]

TASK = "sonar"
DROP_REASONS = ("bad_image", "bad_geometry")

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


class SonarAdapterNode(ManagedNode):
    """The sonar adapter (module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("deal_sonar_adapter", **kwargs)
        self._declare_parameters()
        self._depth_encoding = self.get_parameter("depth_encoding").value
        self._output_encoding = self.get_parameter("output_encoding").value
        self._qos = declare_qos(self, "qos", reliability="best_effort", depth=10)
        self._geometry: SonarGeometry | None = None
        self._waterfall = Waterfall(self.get_parameter("waterfall_rows").value)
        self._throttle = ThrottledLog(self.get_logger(), 5.0)
        self._image_pub = self._depth_pub = self._sub = None
        self.counts = {"received": 0, "published": 0}
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.input_loss = StreamLoss()
        self._diagnostics = Diagnostics(self)
        self._rates = RateMeter()
        self._dropped_before = 0
        period = float(self.get_parameter("stats_period").value)
        if period > 0:
            self.create_timer(period, self.publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.autostart_now()

    def _declare_parameters(self) -> None:
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
        declare(
            self,
            "waterfall_rows",
            400,
            "Side-scan: pings kept",
            value_range=(1, 100000),
            read_only=True,
        )
        declare(
            self,
            "depth_encoding",
            "32FC1",
            "Depth output encoding",
            choices=("32FC1", "16UC1"),
            read_only=True,
        )
        declare(
            self,
            "output_encoding",
            "mono8",
            "Intensity output encoding",
            choices=("mono8", "rgb8"),
            read_only=True,
        )
        declare(
            self,
            "stats_period",
            1.0,
            "Seconds between /diagnostics messages (0: off)",
            read_only=True,
            value_range=(0.0, 3600.0),
        )

    # ------------------------------------------------------------------ lifecycle
    def on_setup(self) -> None:
        """configure: check the geometry (one line if invalid), make the outputs."""
        self._geometry = self._read_geometry({})
        self._waterfall = Waterfall(self._waterfall.rows)
        out_qos = qos_profile("reliable", 10)
        self._image_pub = self.create_lifecycle_publisher(Image, "~/image", out_qos)
        self._depth_pub = self.create_lifecycle_publisher(Image, "~/depth", out_qos)
        g = self._geometry
        self.get_logger().info(
            f"'{self._topic}' -> ~/image, ~/depth ({g.mode}, {g.range_min_m}-{g.range_max_m} m)"
        )

    def on_start(self) -> None:
        """activate: subscribe the sonar."""
        self.input_loss.restart()
        self._sub = self.create_subscription(Image, self._topic, self._on_image, self._qos)
        self._rates.reset(self._counters())

    def on_stop(self) -> None:
        """deactivate: publish what the subscription holds, then unsubscribe."""
        if self._sub is not None:
            drain([self._sub])
            self.destroy_subscription(self._sub)
            self._sub = None

    def on_teardown(self) -> None:
        """cleanup: drop the outputs and the waterfall."""
        for pub in (self._image_pub, self._depth_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._image_pub = self._depth_pub = None
        self._waterfall = Waterfall(self._waterfall.rows)
        self._geometry = None

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
        if self._geometry is None:  # unconfigured: configure reads the parameters
            return SetParametersResult(successful=True)
        if geometry.mode != self._geometry.mode:
            self._waterfall = Waterfall(self._waterfall.rows)
        self._geometry = geometry
        self.input_loss = StreamLoss()  # the ping rate follows the range: count afresh
        return SetParametersResult(successful=True)

    def _on_image(self, msg: Image) -> None:
        self.counts["received"] += 1
        self.input_loss.add(stamp_to_ns(msg.header.stamp))
        geometry = self._geometry
        try:
            intensity = intensity_u8(msg, self._topic)
            if geometry.mode == "sidescan":
                intensity = self._waterfall.push(intensity)
            intensity, depth_m, valid = sonar_to_rgbd(intensity, geometry)
        except ImageFormatError as exc:
            self.dropped["bad_image"] += 1
            self._throttle("bad_image", f"dropped sonar image: {exc}")
            return
        except DepthFormatError as exc:
            self.dropped["bad_geometry"] += 1
            self._throttle("bad_geometry", f"dropped sonar image: {exc}")
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
        self.counts["published"] += 1

    # ------------------------------------------------------------------ health
    def _counters(self) -> dict[str, int]:
        return {**self.counts, "dropped": sum(self.dropped.values())}

    def health(self) -> tuple[str, str, dict[str, Any]]:
        """``(level, message, values)`` of the ``/diagnostics`` status (module doc)."""
        rates = self._rates.rates(self._counters())
        loss = self.input_loss
        g = self._geometry
        values: dict[str, Any] = {
            "lifecycle state": self.lifecycle_state,
            "received Hz": rates["received"],
            "published Hz": rates["published"],
            "dropped Hz": rates["dropped"],
            **self.counts,
            **{f"dropped {k}": v for k, v in self.dropped.items()},
            "input loss": loss.fraction,
            "input missing": loss.missing,
            "input expected": loss.expected,
            "mode": g.mode if g else self.get_parameter("mode").value,
            "range m": f"{g.range_min_m}-{g.range_max_m}" if g else "",
            "input topic": self._topic,
        }
        dropped = sum(self.dropped.values())
        new, self._dropped_before = dropped - self._dropped_before, dropped
        state = self.lifecycle_state
        if state == "unconfigured":
            if self.transition_error:
                return "error", f"unconfigured: {self.transition_error}", values
            return "stale", "unconfigured: waiting for configure", values
        if state == "finalized":
            return "stale", "finalized", values
        if state != "active":
            return "ok", f"{state}: not converting", values
        if rates["received"] == 0:
            return "warn", f"no sonar images received on '{self._topic}'", values
        line = f"converting {rates['published']:.1f} Hz of {rates['received']:.1f} Hz received"
        if new > 0:
            return "warn", f"{line}; {new} images dropped since the last report", values
        if loss.expected >= 30 and loss.fraction > UPSTREAM_HINT_FRACTION:
            return (
                "warn",
                (
                    f"{line}; input loss {loss.fraction:.1%} ({loss.missing} of {loss.expected} "
                    "from the sonar's stamps): check the QoS and the DDS transport"
                ),
                values,
            )
        return "ok", line, values

    def publish_diagnostics(self) -> None:
        level, message, values = self.health()
        status = self._diagnostics.status(TASK, level, message, values)
        self._diagnostics.publish(status)


def main(args: list[str] | None = None) -> int:
    return run_node(SonarAdapterNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
