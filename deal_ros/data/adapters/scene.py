"""The synthetic onboarding benchmark as a dataset: ``scene:`` (+ ``n=``, ``seed=``, ``size=``).

``scene:n=200,seed=1,size=240x320`` (options in the spec or as keywords) gives ``n`` scenes of
:class:`~deal_ros.scene.generator.SceneGenerator`; scene ``i`` is the same for the same seed, in
any order, in any process. ``classes=`` are the generator's classes (object kinds, or any
names with ``shapes={name: kind}``); ``difficulty``, ``min_objects``, ``max_objects``,
``clutter_objects``, ``ignore_edges``, ``zoom`` (focal length multiplier, a close-up camera),
``roll`` (camera roll, a slanted table), ``salt`` (random depth holes) and ``shadow_baseline``
(IR-projector shadow width) pass through. ``mode=multi`` starts from the hard multi-object
benchmark settings (``deal_ros.scene.generator.MODES``: 1-3 objects of 4 classes, shared
colours, slanted table, shadow and random holes); the other options override them. Depth is
the simulated RealSense depth (metres, 0 = hole); masks and boxes are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deal_ros.data.adapters.base import DatasetError, IndexedDataset, as_int, as_size
from deal_ros.data.sample import Box, Sample
from deal_ros.scene.generator import SceneGenerator

__all__ = ["SceneDataset"]


def _as_int(value: Any, what: str) -> int:
    return as_int(value, f"scene: {what}")


def _as_float(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"scene: {what}={value!r} is not a number") from None


class SceneDataset(IndexedDataset):
    """``n`` generated scenes as :class:`Sample` (see the module docstring)."""

    def __init__(
        self,
        path: str | None = None,
        *,
        n: int | str = 100,
        seed: int | str = 0,
        size: Any = (240, 320),
        classes: Sequence[str] | None = None,
        difficulty: str | float | None = None,
        min_objects: int | str | None = None,
        max_objects: int | str | None = None,
        clutter_objects: int | str = 0,
        ignore_edges: int | str = 0,
        shapes: dict[str, str] | None = None,
        zoom: float | str = 1.0,
        mode: str | None = None,
        roll: float | str | None = None,
        salt: float | str | None = None,
        shadow_baseline: float | str | None = None,
    ) -> None:
        self.n = _as_int(n, "n")
        if self.n < 1:
            raise DatasetError(f"scene: n={self.n} must be >= 1")
        self.seed = _as_int(seed, "seed")
        if isinstance(difficulty, str) and difficulty.replace(".", "", 1).isdigit():
            difficulty = float(difficulty)
        kwargs: dict[str, Any] = {} if classes is None else {"classes": tuple(classes)}
        for key, value in (("difficulty", difficulty), ("min_objects", min_objects),
                           ("max_objects", max_objects)):  # fmt: skip
            if value is not None:
                kwargs[key] = value if key == "difficulty" else _as_int(value, key)
        for key, value in (("roll", roll), ("salt", salt), ("shadow_baseline", shadow_baseline)):
            if value is not None:
                kwargs[key] = _as_float(value, key)
        kwargs.update(
            size=as_size(size, "scene size"),
            seed=self.seed,
            clutter_objects=_as_int(clutter_objects, "clutter_objects"),
            ignore_edges=_as_int(ignore_edges, "ignore_edges"),
            shapes=shapes,
            zoom=_as_float(zoom, "zoom"),
        )
        try:
            if mode is not None:
                self.generator = SceneGenerator.from_mode(str(mode), **kwargs)
            else:
                self.generator = SceneGenerator(
                    **{"difficulty": "medium", "min_objects": 1, "max_objects": 3, **kwargs}
                )
        except ValueError as exc:
            raise DatasetError(f"scene: {exc}") from None
        self.classes = tuple(self.generator.classes)
        h, w = self.generator.size
        zoom_text = f",zoom={self.generator.zoom:g}" if self.generator.zoom != 1.0 else ""
        mode_text = f",mode={mode}" if mode is not None else ""
        self.source = f"scene:n={self.n},seed={self.seed},size={h}x{w}{zoom_text}{mode_text}"

    def __len__(self) -> int:
        return self.n

    def _load(self, index: int) -> Sample:
        s = self.generator.sample(index)
        depth = s.depth.astype(np.float32)
        return Sample(
            rgb=s.rgb,
            labels=s.labels.astype(np.float32),
            depth=depth,
            valid=np.isfinite(depth) & (depth > 0),
            mask=s.mask,
            boxes=[
                Box(int(c), float(x0), float(y0), float(x1), float(y1))
                for c, x0, y0, x1, y1 in s.boxes
            ],
            meta={"source": self.source, "index": index, "K": s.K},
        )
