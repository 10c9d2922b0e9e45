"""One frame of ``deal_segmenter``: its inputs decoded once, its outputs converted once.

A frame runs through the worker in three steps, and each step owns one kind of conversion:

1. :meth:`FrameInputs.decode`: the image message to rgb8 (the node's only ``to_rgb8``), the
   paired depth message wrapped in a :class:`~deal_ros.core.depth_image.DepthImage`, decoded
   to metres on its first read and then shared by the depth gate and the 3-D outputs (one
   decode per valid range: one per frame with the default ``cloud.depth_min``/``_max``,
   which match the gate's 0.1-10 m);
2. the runtime (``Runtime.segment`` / ``Runtime.detect``), which checks the rgb array once;
3. :class:`FrameOutputs`: the frame's results, whose ``sensor_msgs/Image`` messages are made
   on first use and then kept, so an array published twice (the class mask on ``~/mask`` and
   inside ``~/segmentation``) is converted once.

Every decode and conversion of a frame goes through these two classes (test-checked by
counting the codec calls of a real node), so a second one cannot creep back unseen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from deal_ros.core.depth_image import DepthImage
from deal_ros.core.image_codec import numpy_to_image, to_rgb8
from deal_ros.infer.instances import InstanceResult, class_id_image
from deal_ros.infer.runtime import InferenceResult

__all__ = ["FrameInputs", "FrameOutputs"]


@dataclass
class FrameInputs:
    """One image message and what was decoded from it: ``rgb`` (H, W, 3) uint8, and the
    depth image paired with it (None: no depth subscribed, or none close enough in time)."""

    msg: Any
    rgb: np.ndarray
    depth: DepthImage | None = None

    @property
    def header(self) -> Any:
        return self.msg.header

    @classmethod
    def decode(
        cls, msg: Any, depth_msg: Any | None, *, image_name: str, depth_name: str = "depth"
    ) -> FrameInputs:
        """Decode ``msg`` (rgb8 / bgr8 / rgba8 / bgra8 / mono8; one clear error naming
        ``image_name`` otherwise); ``depth_msg`` is decoded later, on its first read."""
        depth = None if depth_msg is None else DepthImage(depth_msg, name=depth_name)
        return cls(msg, to_rgb8(msg, name=image_name), depth)


@dataclass
class FrameOutputs:
    """One frame's results, with the input's ``header``: ``mask`` (H, W) uint8 class ids,
    ``run_s`` the session.run seconds, the optional ``cam`` / ``overlay`` / ``class_cams``,
    and for an instance bundle ``instances`` with their id map ``ids``. The ``*_image``
    properties are the ``sensor_msgs/Image`` messages, each made once."""

    header: Any
    mask: np.ndarray
    scores: np.ndarray  # (K,) image-level class scores (instances: each class's best)
    run_s: float
    cam: np.ndarray | None = None
    overlay: np.ndarray | None = None
    class_cams: dict[int, np.ndarray] = field(default_factory=dict)
    instances: InstanceResult | None = None
    ids: np.ndarray | None = None

    @classmethod
    def of_semantic(cls, header: Any, result: InferenceResult) -> FrameOutputs:
        return cls(header, result.mask, result.scores, result.timings["run"], cam=result.cam,
                   overlay=result.overlay, class_cams=result.class_cams)  # fmt: skip

    @classmethod
    def of_instances(cls, header: Any, result: InstanceResult, num_classes: int) -> FrameOutputs:
        """``~/mask`` holds each pixel's instance class; scores are each class's best."""
        ids = result.id_image()
        return cls(header, class_id_image(ids, result.classes), result.class_scores(num_classes),
                   result.timings["run"], overlay=result.overlay, instances=result,
                   ids=ids)  # fmt: skip

    @property
    def cloud_labels(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(instance-id map, class of each instance) for one 3-D object per instance; None
        for a semantic frame (one object per class of ``mask``)."""
        if self.instances is None:
            return None
        return self.ids, self.instances.classes[:255]

    def _image(self, array: np.ndarray, encoding: str) -> Any:
        return numpy_to_image(array, encoding, self.header)

    @cached_property
    def mask_image(self) -> Any:
        """mono8 class ids: ``~/mask`` and the mask inside ``~/segmentation``."""
        return self._image(self.mask, "mono8")

    @cached_property
    def cam_image(self) -> Any:
        return self._image(self.cam, "32FC1")

    @cached_property
    def overlay_image(self) -> Any:
        return self._image(self.overlay, "rgb8")

    @cached_property
    def ids_image(self) -> Any:
        """mono8 instance ids, the mask of ``~/instances``."""
        return self._image(self.ids, "mono8")

    def class_cam_image(self, class_id: int) -> Any | None:
        """32FC1 CAM of ``class_id`` for ``~/cam/<class>`` (None when not computed): the
        ``~/cam`` image for the strongest class (the same array), else made here (each class
        is published once per frame, so nothing is kept)."""
        heat = self.class_cams.get(class_id)
        if heat is None:
            return None
        return self.cam_image if heat is self.cam else self._image(heat, "32FC1")
