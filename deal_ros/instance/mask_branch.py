"""The mask branch (CondInst): shared mask features that every dynamic mask head reads.

CondInst: each of P3, P4, P5 is refined by a 3x3 conv + BN + ReLU, brought to P3's size and
summed, then 4 convs (3x3 + BN + ReLU) and a 1x1 conv to 8 channels, at stride 8; the
instance masks are upsampled 2x to stride 4 (BoxInst's ``mask_out_stride``).
``stride=4`` (our default): the sum is upsampled to the stride-4 backbone level and fused with
it (1x1 lateral), so masks are computed at stride 4 directly; small objects at small inputs
keep their shape. ``stride=8`` is CondInst's layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
    )


class MaskBranch(nn.Module):
    """``forward([P3, P4, P5], c2) -> (B, mask_channels, H/stride, W/stride)``."""

    def __init__(
        self,
        fpn_channels: int,
        channels: int = 64,
        out_channels: int = 8,
        num_convs: int = 2,
        stride: int = 4,
        c2_channels: int | None = None,
    ) -> None:
        super().__init__()
        if stride not in (4, 8):
            raise ValueError(f"MaskBranch: stride must be 4 or 8, got {stride}")
        if stride == 4 and not c2_channels:
            raise ValueError("MaskBranch: stride 4 needs the backbone's stride-4 level (c2)")
        self.stride = stride
        self.refine = nn.ModuleList(conv_bn_relu(fpn_channels, channels) for _ in range(3))
        self.lateral = conv_bn_relu(c2_channels, channels, 1) if stride == 4 else None
        self.tower = nn.Sequential(*(conv_bn_relu(channels, channels) for _ in range(num_convs)))
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, pyramid: list[torch.Tensor], c2: torch.Tensor | None = None) -> torch.Tensor:
        x = self.refine[0](pyramid[0])
        for conv, p in zip(self.refine[1:], pyramid[1:]):
            x = x + F.interpolate(conv(p), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.lateral is not None:
            lat = self.lateral(c2)
            x = lat + F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.tower(x))
