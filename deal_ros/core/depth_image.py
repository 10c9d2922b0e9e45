"""One depth image decoded once, read with different depth ranges (numpy; rclpy or rosbags
messages alike).

A frame's depth has several readers that each want their own valid range: the segmenter's
depth gate, the 3-D outputs (``cloud.depth_min``/``cloud.depth_max``). Decoding it once per
reader converts every pixel again. :class:`DepthImage` decodes on first use, without a range
(valid: measured, finite and > 0), and :meth:`DepthImage.within` narrows the valid pixels to a
range: the very ``(depth_m, valid)`` pair of ``depth_msg_to_metres(msg, min_m=..., max_m=...)``
(invalid pixels hold 0), for two comparisons and one select per reader instead of a decode.

Why it is the same: :func:`~deal_ros.core.depth.depth_to_metres` marks a pixel valid when
``d > 0`` and ``d >= min_m`` and (``d <= max_m``, or ``d`` finite when there is no
``max_m``); ``d <= max_m`` already fails for NaN and +inf, so that is "measured and inside the
range", which :meth:`~DepthImage.within` computes from the measured pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deal_ros.core.depth import depth_msg_to_metres
from deal_ros.core.errors import DepthFormatError

__all__ = ["DepthImage"]


class DepthImage:
    """A ``sensor_msgs/Image`` depth message (16UC1 mm / 32FC1 m / ...), decoded to metres at
    most once. ``name`` (the topic) goes into error lines; a bad image raises
    :class:`~deal_ros.core.errors.DepthFormatError` at the first read, not here."""

    def __init__(self, msg: Any, *, name: str | None = None) -> None:
        self.msg = msg
        self.name = name
        self._decoded: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def header(self) -> Any:
        return self.msg.header

    def decoded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(depth_m float32 HxW, measured bool HxW)``: every measured pixel, no range."""
        if self._decoded is None:
            self._decoded = depth_msg_to_metres(self.msg, name=self.name, min_m=None, max_m=None)
        return self._decoded

    def within(self, min_m: float | None, max_m: float | None) -> tuple[np.ndarray, np.ndarray]:
        """``(depth_m, valid)`` with valid = measured and inside ``[min_m, max_m]`` (either
        bound may be None), as ``depth_msg_to_metres(msg, min_m=min_m, max_m=max_m)``."""
        if min_m is not None and max_m is not None and not min_m <= max_m:
            where = f"depth image '{self.name}'" if self.name else "depth image"
            raise DepthFormatError(f"{where}: min_m ({min_m}) must be <= max_m ({max_m})")
        depth, valid = self.decoded()
        if min_m is None and max_m is None:
            return depth, valid
        if min_m is not None:
            valid = valid & (depth >= min_m)  # new arrays: the decoded pair stays as it is
        if max_m is not None:
            valid = valid & (depth <= max_m)
        return np.where(valid, depth, np.float32(0.0)), valid
