"""ROS-free, torch-free building blocks: image codec, depth handling, approximate-time pairing.

Nothing here imports rclpy or torch at import time.
"""

from deal_ros.core.depth import (
    DepthStats,
    depth_msg_to_metres,
    depth_stats,
    depth_to_metres,
    metres_to_16uc1,
    metres_to_32fc1,
    resize_depth,
)
from deal_ros.core.errors import DepthFormatError, ImageFormatError, PairingError
from deal_ros.core.image_codec import ImageSpec, image_spec, image_to_numpy, numpy_to_image, to_rgb8
from deal_ros.core.pairing import (
    ApproxTimePairer,
    PairedSet,
    PairingStats,
    ns_to_sec_nanosec,
    stamp_to_ns,
)

__all__ = [
    "ApproxTimePairer",
    "DepthFormatError",
    "DepthStats",
    "ImageFormatError",
    "ImageSpec",
    "PairedSet",
    "PairingError",
    "PairingStats",
    "depth_msg_to_metres",
    "depth_stats",
    "depth_to_metres",
    "image_spec",
    "image_to_numpy",
    "metres_to_16uc1",
    "metres_to_32fc1",
    "ns_to_sec_nanosec",
    "numpy_to_image",
    "resize_depth",
    "stamp_to_ns",
    "to_rgb8",
]
