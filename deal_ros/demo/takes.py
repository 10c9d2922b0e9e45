"""Onboarding "takes" of the demo camera and their ground truth (numpy only, no ROS).

A take is the frames the camera shows for one class: ``SceneGenerator.frames(class, m, seed + r)``
for ``r`` in ``range(rooms)`` (``n`` frames split into ``rooms`` runs of ``m``), rendered once
(RGB, depth in millimetres as a RealSense sends it, and the exact class mask). Every take uses
the same seeds, so every object is shown in the same rooms, like objects shown one after
another on the same few tables (the room never tells the classes apart); more than one room
lets the CAMs learn the object rather than one room's look.

The camera writes, into its ground-truth folder, ``<class>.npz`` (the take's masks, class ids
of the camera's class list) and ``stamps.jsonl`` (one line per published frame:
``{"stamp_ns", "class", "frame"}``), so any recorded frame can be matched to its mask by its
header stamp: :class:`GroundTruth`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deal_ros.core.depth import metres_to_16uc1
from deal_ros.errors import DealError
from deal_ros.scene.generator import SceneGenerator

__all__ = ["GroundTruth", "Take", "pingpong", "render_take", "room_frames", "save_take_masks"]

STAMPS_FILE = "stamps.jsonl"


@dataclass
class Take:
    """``n`` frames of one class: rgb (n, H, W, 3) uint8, depth_mm (n, H, W) uint16 (0 =
    invalid), mask (n, H, W) uint8 (generator class ids, 255 ignore), K (3, 3)."""

    class_name: str
    rgb: np.ndarray
    depth_mm: np.ndarray
    mask: np.ndarray
    K: np.ndarray

    def __len__(self) -> int:
        return len(self.rgb)


def room_frames(n: int, rooms: int) -> list[int]:
    """Frames per room when ``n`` frames are split over ``rooms`` rooms (first rooms get more)."""
    rooms = max(1, min(rooms, n))
    return [n // rooms + (r < n % rooms) for r in range(rooms)]


def render_take(gen: SceneGenerator, class_name: str, n: int, seed: int, rooms: int = 1) -> Take:
    """Render the take of ``class_name``: ``n`` frames over ``rooms`` rooms (episode seeds
    ``seed``, ``seed + 1``, ..)."""
    if n < 1:
        raise DealError(f"demo camera: frames must be >= 1, got {n}")
    if rooms < 1:
        raise DealError(f"demo camera: rooms must be >= 1, got {rooms}")
    rgb, depth, mask, K = [], [], [], None
    for r, m in enumerate(room_frames(n, rooms)):
        for scene in gen.frames(class_name, m, seed=seed + r):
            rgb.append(scene.rgb)
            depth.append(metres_to_16uc1(scene.depth, scene.depth > 0))
            mask.append(scene.mask)
            K = scene.K
    return Take(class_name, np.stack(rgb), np.stack(depth), np.stack(mask), np.asarray(K))


def pingpong(i: int, n: int) -> int:
    """Frame index of the ``i``-th publication of an ``n``-frame take played back and forth
    (0, 1, .., n-1, n-2, .., 1, 0, 1, ..): the object never jumps within a room."""
    if n <= 1:
        return 0
    period = 2 * n - 2
    j = i % period
    return j if j < n else period - j


def save_take_masks(folder: Path, take: Take) -> Path:
    """``<folder>/<class>.npz`` with the take's masks."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{take.class_name}.npz"
    tmp = folder / f".{take.class_name}.tmp.npz"
    np.savez_compressed(tmp, mask=take.mask)
    tmp.replace(path)
    return path


class GroundTruth:
    """Masks of published frames by header stamp (the camera's ground-truth folder).

    ``classes`` is the camera's class list (mask ids of the takes); :meth:`mask` maps them to
    the ids of ``target_classes`` (a run's or bundle's order; unknown classes -> 255)."""

    def __init__(self, folder: str | Path, classes: Sequence[str]) -> None:
        self.folder = Path(folder)
        self.classes = list(classes)
        path = self.folder / STAMPS_FILE
        if not path.is_file():
            raise DealError(f"demo ground truth: {path} not found (did the camera run?)")
        self.by_stamp: dict[int, tuple[str, int]] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                self.by_stamp[int(rec["stamp_ns"])] = (str(rec["class"]), int(rec["frame"]))
        self._masks: dict[str, np.ndarray] = {}

    def __contains__(self, stamp_ns: int) -> bool:
        return int(stamp_ns) in self.by_stamp

    def class_of(self, stamp_ns: int) -> str | None:
        hit = self.by_stamp.get(int(stamp_ns))
        return hit[0] if hit else None

    def _take(self, class_name: str) -> np.ndarray:
        if class_name not in self._masks:
            path = self.folder / f"{class_name}.npz"
            if not path.is_file():
                raise DealError(f"demo ground truth: {path} not found")
            with np.load(path) as data:
                self._masks[class_name] = data["mask"]
        return self._masks[class_name]

    def mask(self, stamp_ns: int, target_classes: Sequence[str]) -> np.ndarray | None:
        """The mask of the frame stamped ``stamp_ns`` in ``target_classes`` ids, or None."""
        hit = self.by_stamp.get(int(stamp_ns))
        if hit is None:
            return None
        class_name, frame = hit
        raw = self._take(class_name)[frame]
        lut = np.full(256, 255, np.uint8)
        lut[0] = 0
        for k, name in enumerate(self.classes, start=1):
            if name in target_classes:
                lut[k] = list(target_classes).index(name) + 1
        return lut[raw]
