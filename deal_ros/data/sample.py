"""The one sample type every dataset adapter yields, and the protocol they follow.

Adapters (episodes, plain bags, VOC, COCO, BOP, the scene generator) all produce ``Sample`` so
that the trainer, pseudo-labelling and evaluation never care where data came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class Box:
    """An axis-aligned box in pixels (x1, y1 exclusive) with a foreground class id (1..K)."""

    class_id: int
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass
class Sample:
    """One RGB-D frame with image-level labels.

    rgb:    (H, W, 3) uint8.
    depth:  (H, W) float32 metres, or None for RGB-only data.
    valid:  (H, W) bool, True where depth is a measurement (None when depth is None).
    labels: (K,) float32 multi-hot over the dataset's foreground classes (no background).
    mask:   (H, W) uint8 class ids (0 background, 1..K classes, 255 ignore) — for evaluation
            only; training never reads it.
    boxes:  instance boxes when the source has them (box-supervised training).
    meta:   where the sample came from (source, index, stamp_ns, path ...).
    """

    rgb: np.ndarray
    labels: np.ndarray
    depth: np.ndarray | None = None
    valid: np.ndarray | None = None
    mask: np.ndarray | None = None
    boxes: list[Box] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        h, w = self.rgb.shape[:2]
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise ValueError(
                f"Sample.rgb must be (H,W,3) uint8, got {self.rgb.shape} {self.rgb.dtype}"
            )
        for name in ("depth", "valid", "mask"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[:2] != (h, w):
                raise ValueError(
                    f"Sample.{name} is {arr.shape[0]}x{arr.shape[1]} but rgb is {h}x{w}"
                    f" ({self.meta.get('source', 'unknown source')})"
                )
        if self.depth is not None and self.valid is None:
            self.valid = np.isfinite(self.depth) & (self.depth > 0)


@runtime_checkable
class SampleDataset(Protocol):
    """What every adapter provides: class names (foreground, id = index + 1) and indexing."""

    classes: Sequence[str]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...
