"""Tiny real model bundles for the export / infer / segmenter tests (built once per process).

A CAMNet / SegNet with ``pretrained=None`` at a small input size; BatchNorm statistics are
calibrated on a few scene-generator frames (one forward pass in train mode) so that scores and
CAMs are not degenerate (untrained BN statistics shrink every activation towards 0).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deal_ros.export import export_model
from deal_ros.nets import CAMNet, SegNet
from deal_ros.scene.generator import SceneGenerator

INPUT_SIZE = (64, 96)
CAM_CLASSES = ("mug", "box")
SEG_CLASSES = ("mug", "box", "ball")
_ROOT = Path(tempfile.mkdtemp(prefix="deal-deploy-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@dataclass(frozen=True)
class TinyBundle:
    path: Path
    cam_net: CAMNet
    seg_net: SegNet | None
    classes: tuple[str, ...]


def scene_images(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``n`` rendered RGB frames (H, W, 3) uint8."""
    gen = SceneGenerator(size=size, seed=seed)
    return [gen.sample(i).rgb for i in range(n)]


def calibrate(net: torch.nn.Module, images: list[np.ndarray]) -> torch.nn.Module:
    """Set BatchNorm running statistics from ``images`` (one train-mode pass), then eval."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(x)
    return net.eval()


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run torch on ``n`` threads (OpenMP threads spin badly on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
@torch_threads()
def cam_bundle() -> TinyBundle:
    """2 classes, CAM net only, fixed 64x96 input."""
    torch.manual_seed(0)
    net = calibrate(CAMNet("mobilenet_v2", len(CAM_CLASSES), pretrained=None),
                    scene_images(6, INPUT_SIZE))  # fmt: skip
    path = _ROOT / "cam"
    export_model(net, CAM_CLASSES, path, input_size=INPUT_SIZE, cam_threshold=0.3)
    return TinyBundle(path, net, None, CAM_CLASSES)


@functools.cache
@torch_threads()
def seg_bundle() -> TinyBundle:
    """3 classes, CAM net + stage-2 SegNet, dynamic spatial size (default 64x96)."""
    torch.manual_seed(1)
    images = scene_images(6, INPUT_SIZE, seed=1)
    cam = calibrate(CAMNet("mobilenet_v2", len(SEG_CLASSES), pretrained=None), images)
    seg = calibrate(SegNet("mobilenet_v2", len(SEG_CLASSES) + 1, pretrained=None), images)
    path = _ROOT / "seg"
    export_model(cam, SEG_CLASSES, path, seg_net=seg, input_size=INPUT_SIZE, dynamic_size=True)
    return TinyBundle(path, cam, seg, SEG_CLASSES)


def copy_bundle(src: Path, dst: Path) -> Path:
    """A private copy of a bundle folder (tests may corrupt it)."""
    shutil.copytree(src, dst)
    return dst
