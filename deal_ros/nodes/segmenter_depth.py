"""The segmenter's depth: the newest depth message matched to each image, and the depth gate.

:class:`DepthInput` keeps the newest message of the ``depth`` subscription and pairs it with an
image when their stamps are within ``depth.slop``; when it cannot, it says why (not subscribed,
nothing received yet, too far apart in time), and the node's readers (the gate, the 3-D
outputs) log that reason instead of a guess.

:class:`DepthGate` makes the gate's keep mask (:func:`deal_ros.infer.postprocess.depth_keep`:
valid depth no farther than ``depth.max_range``) and refuses what would make it silently wrong,
each condition one line per burst (:class:`~deal_ros.nodes._common.BurstLog`) and counted:

* depth of another size than the image (``size``): never stretched (a 640x480 depth on an
  848x480 image is not the same view); :class:`DepthSizeError`, the node drops the frame.
  Registering depth to colour needs the depth camera's intrinsics and the extrinsics between
  the two cameras, which a segmenter does not have: use the driver's aligned depth
  (RealSense: ``align_depth.enable:=true``, ``.../aligned_depth_to_color/image_raw``);
* a depth image without any valid pixel (all zero, all NaN, or all outside 0.1-10 m:
  ``no_valid``): the gate makes every pixel background, which is right for "nothing within
  range" but is said once per burst, and again when valid depth returns;
* no depth paired with the image (``no_depth``): the frame goes out without the gate (as
  before), with the reason once per burst.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from deal_ros.core.depth_image import DepthImage
from deal_ros.core.errors import DepthFormatError
from deal_ros.core.pairing import stamp_to_ns
from deal_ros.infer.postprocess import depth_keep
from deal_ros.nodes._common import BurstLog

__all__ = ["GATE_RANGE_M", "DepthGate", "DepthInput", "DepthSizeError"]

# The depth gate's valid depth: 0.1-10 m (depth_to_metres' default range, our choice for a
# RealSense D4xx); the 3-D outputs read cloud.depth_min / cloud.depth_max, by default the same
# range, so the frame's DepthImage decodes once for both.
GATE_RANGE_M = (0.1, 10.0)


class DepthSizeError(DepthFormatError):
    """The depth image's size differs from the colour image's (not aligned to colour)."""


class DepthInput:
    """The newest depth message (thread-safe) and its pairing with images.

    ``topic``: the depth subscription's topic (None: not subscribed, ``use_depth`` false);
    ``slop_s``: the current ``depth.slop`` (a callable: the parameter may change)."""

    def __init__(self, topic: str | None, slop_s: Callable[[], float]) -> None:
        self.topic = topic
        self.slop_s = slop_s
        self._lock = threading.Lock()
        self._msg: Any = None
        self.received = 0

    @property
    def subscribed(self) -> bool:
        return self.topic is not None

    @property
    def newest(self) -> Any:
        """The newest depth message received (None before the first)."""
        with self._lock:
            return self._msg

    def put(self, msg: Any) -> None:
        """The subscription callback."""
        with self._lock:
            self._msg = msg
            self.received += 1

    def clear(self) -> None:
        """Forget the newest message (deactivation: it would be stale at the next start)."""
        with self._lock:
            self._msg = None

    def match(self, image_msg: Any) -> tuple[Any | None, str]:
        """``(depth message, "")`` within ``depth.slop`` of ``image_msg``'s stamp, else
        ``(None, why)``."""
        if self.topic is None:
            return None, "use_depth is false (no depth subscription)"
        depth = self.newest
        if depth is None:
            return None, f"no depth image received yet on '{self.topic}'"
        slop = float(self.slop_s())
        gap = abs(stamp_to_ns(depth.header.stamp) - stamp_to_ns(image_msg.header.stamp)) / 1e9
        if gap > slop:
            return None, (
                f"the newest depth on '{self.topic}' is {gap:.3f} s from the image's stamp "
                f"(depth.slop {slop:g} s)"
            )
        return depth, ""


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


class DepthGate:
    """The depth gate of one node (module docstring). ``counts``: frames per condition."""

    def __init__(self, logger: Any, image_topic: str, depth_topic: str | None) -> None:
        self.image_topic = image_topic
        self.depth_topic = depth_topic or "depth"
        self.bursts = BurstLog(logger)
        self.counts = {"size": 0, "no_valid": 0, "no_depth": 0}

    def keep(
        self,
        image_shape: tuple[int, int],
        depth: DepthImage | None,
        why_no_depth: str,
        max_range_m: float,
    ) -> np.ndarray | None:
        """The (H, W) keep mask at ``image_shape``, or None (gate off: ``max_range_m`` <= 0,
        or no depth paired with this image). Raises :class:`DepthSizeError` for depth of
        another size (the frame must not go out ungated nor with a stretched gate)."""
        if max_range_m <= 0:
            return None
        if depth is None:
            self.counts["no_depth"] += 1
            self.bursts.hit("no_depth", f"depth gate off for these frames: {why_no_depth}")
            return None
        self.bursts.clear("no_depth", "depth gate on again (after {count} frames without depth)")
        depth_m, valid = depth.within(*GATE_RANGE_M)
        if depth_m.shape != tuple(image_shape):
            self.counts["size"] += 1
            line = (
                f"depth '{self.depth_topic}' is {_size(depth_m.shape)} but image "
                f"'{self.image_topic}' is {_size(image_shape)}: the depth gate needs depth "
                "aligned to colour (same size; RealSense: align_depth.enable:=true and the "
                "aligned_depth_to_color topic); it is never stretched, frames are dropped"
            )
            self.bursts.hit("size", line, "error")
            raise DepthSizeError(line)
        self.bursts.clear("size", "depth and image sizes agree again (after {count} frames)")
        if not valid.any():
            self.counts["no_valid"] += 1
            lo, hi = GATE_RANGE_M
            self.bursts.hit(
                "no_valid",
                f"depth '{self.depth_topic}' has no valid pixel (all zero, NaN or outside "
                f"{lo:g}-{hi:g} m): the depth gate makes every pixel background until valid "
                "depth returns",
            )
        else:
            self.bursts.clear(
                "no_valid",
                f"depth '{self.depth_topic}' has valid pixels again (after {{count}} frames "
                "without any)",
            )
        return depth_keep(depth_m, valid, image_shape, max_range_m)
