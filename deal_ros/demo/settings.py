"""What one ``deal demo`` run does: sizes, counts and where it writes (full and quick presets).

The full preset fits in under 8 minutes on 2 CPU cores; ``--quick`` (CI) in 1-2 minutes.
Training runs at twice the camera's size (``input_size`` 240x320, stride 16: see the comments
of ``deal_ros/train/configs/demo.yaml`` for what that was measured against). Each take is
played once and recorded whole, so every run trains on the same frames and, training being
deterministic, ends with the same model on one machine.

The camera is a close-up (``zoom`` 2.5: objects cover about 12 % of the image instead of 2.5 %)
so that at the small input size an object spans several CAM pixels (at zoom 1 and 120x160 a
mug is 1-2 CAM pixels at stride 8, too few for a CAM to outline); each take is split over
``rooms`` rooms. The held-out scenes use the same camera (zoom) in other rooms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deal_ros.errors import DealError
from deal_ros.scene.objects import KINDS

__all__ = ["DemoSettings"]


@dataclass(frozen=True)
class DemoSettings:
    out: Path = Path("demo-out")
    classes: tuple[str, ...] = ("mug", "box", "ball")
    frames: int = 64  # per class (one onboarding episode each)
    steps: int = 90  # CAM training steps
    batch_size: int = 8
    camera_size: tuple[int, int] = (120, 160)
    input_size: tuple[int, int] = (240, 320)  # the frames upsampled 2x (demo.yaml)
    zoom: float = 2.5  # focal length multiplier of the generator's camera (close-up)
    rooms: int = 4  # rooms each take is split over (shared by all classes)
    rate_hz: float = 15.0
    heldout: int = 24  # held-out generated scenes for the scores
    heldout_seed: int = 1000
    seed: int = 0  # scene generator (the room of the takes) and training
    save_per_episode: int = 6  # segmenter outputs written as PNG per replayed episode
    keep: bool = False  # keep work/ (episodes, run folder, ground truth)
    quick: bool = False

    @classmethod
    def preset(cls, quick: bool = False, **changes: Any) -> DemoSettings:
        """The full or quick preset with ``changes`` (None values are ignored)."""
        base = cls.quick_preset() if quick else cls()
        return replace(base, **{k: v for k, v in changes.items() if v is not None}).validate()

    @classmethod
    def quick_preset(cls) -> DemoSettings:
        return cls(
            frames=24,
            steps=12,
            camera_size=(96, 128),
            input_size=(96, 128),
            rooms=2,
            heldout=8,
            save_per_episode=3,
            quick=True,
        )

    def validate(self) -> DemoSettings:
        bad = [c for c in self.classes if c not in KINDS]
        if bad:
            raise DealError(
                f"--classes: {', '.join(bad)} not objects of the scene generator; "
                f"choose from {', '.join(KINDS)}"
            )
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise DealError(
                f"--classes: give at least 2 different classes, got {','.join(self.classes)} "
                "(with one class every image is positive and the CAMs learn nothing)"
            )
        if self.frames < 2:
            raise DealError(f"--frames must be >= 2, got {self.frames}")
        if self.frames * len(self.classes) < self.batch_size:
            raise DealError(
                f"--frames {self.frames} x {len(self.classes)} classes is fewer than one batch "
                f"of {self.batch_size}"
            )
        if not 0.25 <= self.zoom <= 10.0:
            raise DealError(f"zoom must lie in [0.25, 10], got {self.zoom}")
        if not 1 <= self.rooms <= self.frames:
            raise DealError(f"rooms must lie in [1, frames={self.frames}], got {self.rooms}")
        if self.steps < 1:
            raise DealError(f"--steps must be >= 1, got {self.steps}")
        return self

    @property
    def size_text(self) -> str:
        return f"{self.camera_size[0]}x{self.camera_size[1]}"

    @property
    def heldout_spec(self) -> str:
        """The ``scene:`` spec of the held-out scenes (the camera's size and zoom)."""
        return (
            f"scene:n={self.heldout},seed={self.heldout_seed},size={self.size_text},"
            f"zoom={self.zoom:g}"
        )
