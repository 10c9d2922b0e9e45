"""One depth image of a frame, decoded once for all its readers (numpy; rclpy or rosbags
messages alike).

A frame's depth has more than one reader: the segmenter's depth gate and its 3-D outputs.
Each used to decode the message itself. A :class:`DepthImage` is made once per frame and
handed to every reader; :meth:`DepthImage.within` decodes on the first read
(:func:`~deal_ros.core.depth.depth_msg_to_metres`, so the result is exactly that function's)
and keeps the ``(depth_m, valid)`` pair for the next reader asking for the same valid range.

Our choice: one decode per distinct range, not one unranged decode narrowed per reader. A
16UC1 decode at 640x480 costs about what narrowing it to a range costs (the comparisons are
the work), so narrowing would make the common one-range frame slower; the gate's range and the
3-D outputs' default range are the same 0.1-10 m, so with default parameters a frame's depth
is decoded once. The kept arrays are read-only: they are shared between readers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deal_ros.core.depth import depth_msg_to_metres

__all__ = ["DepthImage"]


class DepthImage:
    """A ``sensor_msgs/Image`` depth message (16UC1 mm / 32FC1 m / ...) and its decodes.
    ``name`` (the topic) goes into error lines; a bad image raises
    :class:`~deal_ros.core.errors.DepthFormatError` at the first read, not here."""

    def __init__(self, msg: Any, *, name: str | None = None) -> None:
        self.msg = msg
        self.name = name
        self._by_range: dict[tuple[float | None, float | None], tuple[np.ndarray, np.ndarray]]
        self._by_range = {}

    @property
    def header(self) -> Any:
        return self.msg.header

    @property
    def decodes(self) -> int:
        """How many times the message was decoded (once per distinct range read)."""
        return len(self._by_range)

    def within(self, min_m: float | None, max_m: float | None) -> tuple[np.ndarray, np.ndarray]:
        """``depth_msg_to_metres(msg, min_m=min_m, max_m=max_m)``: float32 metres and the
        valid mask (measured and inside the range; either bound may be None), decoded on the
        first call for this range and then kept (read-only arrays)."""
        key = (min_m, max_m)
        pair = self._by_range.get(key)
        if pair is None:
            pair = depth_msg_to_metres(self.msg, name=self.name, min_m=min_m, max_m=max_m)
            for arr in pair:
                arr.flags.writeable = False
            self._by_range[key] = pair
        return pair
