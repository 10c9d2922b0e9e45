"""Errors raised by the ROS-free core: each is a :class:`~deal_ros.errors.DealError` and a
:class:`ValueError`, so the CLI prints it as one line and plain Python callers can catch
``ValueError``.
"""

from __future__ import annotations

from deal_ros.errors import DealError

__all__ = ["DealError", "DepthFormatError", "ImageFormatError", "PairingError"]


class ImageFormatError(DealError, ValueError):
    """A ``sensor_msgs/Image`` (or an array meant to become one) has an unusable layout:
    unknown encoding, ``step`` too small, ``data`` too short, zero size, wrong dtype/shape."""


class DepthFormatError(DealError, ValueError):
    """A depth map has an unsupported encoding, shape or parameter (scale, range, size)."""


class PairingError(DealError, ValueError):
    """Misuse of the approximate-time pairer: unknown stream, bad slop or queue size."""
