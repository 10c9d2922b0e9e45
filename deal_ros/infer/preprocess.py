"""rgb8 image -> the graph's input tensor: resize (PIL), scale and normalise (numpy, no loops).

``x = (resize(rgb) / 255 - mean) / std`` as (1, 3, h, w) float32, with ``mean``/``std`` from the
bundle's ``input`` section (identity for CAMNet exports: their graph normalises itself). The
scale and normalisation are folded into one multiply (+ one add when mean != 0) per channel,
written straight into the NCHW buffer.

``input.fit`` (instance bundles trained with ``fit: pad``): the image is scaled to fit inside
(h, w) keeping its aspect ratio, centred, and the rest filled with ``pad_value`` (the training
letterbox of ``deal_ros.data.torch_dataset.fit_sample``; the geometry is
``deal_ros.core.placement``, re-exported here). :class:`Placement` says where the image went,
so outputs can be mapped back (``deal_ros.infer.postprocess.unplace``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from deal_ros.core.placement import Placement, placement
from deal_ros.infer.bundle import InputSpec

__all__ = ["Placement", "Preprocessor", "placement", "to_rgb_array"]

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}


def to_rgb_array(image: np.ndarray, where: str = "image") -> np.ndarray:
    """Check an (H, W, 3) uint8 RGB array (mono8 (H, W) is repeated to 3 channels)."""
    image = np.asarray(image)
    if image.ndim == 2 and image.dtype == np.uint8:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"{where}: expected an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{where}: zero size {image.shape[:2]}")
    return image


class Preprocessor:
    """Callable: ``pre(rgb, size) -> (1, 3, size[0], size[1]) float32``."""

    def __init__(self, spec: InputSpec) -> None:
        std = np.asarray(spec.std, dtype=np.float32)
        mean = np.asarray(spec.mean, dtype=np.float32)
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)[:, None, None]
        self.offset = (-mean / std).astype(np.float32)[:, None, None]
        self.uniform_scale = bool(np.all(self.scale == self.scale[0]))
        self.zero_offset = bool(np.all(self.offset == 0))
        self.resample = _RESAMPLE[spec.resize]
        self.fit = spec.fit
        self.pad_value = np.asarray(spec.pad_value, dtype=np.uint8)

    def resize(self, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``rgb`` at ``size`` = (h, w); unchanged when it already has that size."""
        if rgb.shape[:2] == tuple(size):
            return rgb
        image = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
        return np.asarray(image.resize((size[1], size[0]), self.resample))

    def place(self, rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Placement]:
        """``rgb`` brought to ``size`` by the bundle's fit (stretch, or letterbox)."""
        where = placement(rgb.shape[:2], size, self.fit)
        if (where.height, where.width) == tuple(size):
            return self.resize(rgb, size), where
        canvas = np.empty((size[0], size[1], 3), dtype=np.uint8)
        canvas[:] = self.pad_value
        rows = slice(where.top, where.top + where.height)
        cols = slice(where.left, where.left + where.width)
        canvas[rows, cols] = self.resize(rgb, (where.height, where.width))
        return canvas, where

    def __call__(self, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return self.with_placement(rgb, size)[0]

    def with_placement(
        self, rgb: np.ndarray, size: tuple[int, int]
    ) -> tuple[np.ndarray, Placement]:
        """(the (1, 3, h, w) input, where the image lies in it); ``rgb`` is checked first
        (:func:`to_rgb_array`)."""
        return self.checked(to_rgb_array(rgb), size)

    def checked(self, rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Placement]:
        """:meth:`with_placement` of an ``rgb`` that :func:`to_rgb_array` already returned
        (``Runtime.segment``/``detect`` check each image once, then call this)."""
        resized, where = self.place(rgb, size)
        out = np.empty((1, 3, size[0], size[1]), dtype=np.float32)
        chw = resized.transpose(2, 0, 1)
        scale = self.scale[0, 0, 0] if self.uniform_scale else self.scale
        np.multiply(chw, scale, out=out[0], dtype=np.float32)
        if not self.zero_offset:
            out[0] += self.offset
        return out, where
