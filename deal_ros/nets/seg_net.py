"""Second-stage segmenter: DeepLabv3+-style "lite" head on the same backbones.

Chen et al. (DeepLabv3 / v3+): ASPP on the last features (a 1x1 branch, atrous 3x3 branches,
an image-pooling branch, concatenated and projected), then a decoder that fuses the stride-4
features. "Lite" (our choice, for CPU / Jetson): the atrous branches are depthwise-separable,
128 channels instead of 256, and the image-pooling branch has no BatchNorm (so batch 1 trains).
Atrous rates are (6, 12, 18) at output stride 16, scaled with it (x2 at 8, /2 at 32).

``forward(x) -> logits`` (B, C, H, W) at the input size (bilinear upsampling in forward), or at
stride 4 (decoder) / the output stride (no decoder) with ``upsample=False``. C counts the
background class: the stage that trains it decides the label layout. Input: RGB in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deal_ros.nets.backbone import Backbone, InputNorm
from deal_ros.nets.registry import resolve_backbone


def conv_bn_relu(
    cin: int, cout: int, k: int = 1, dilation: int = 1, groups: int = 1
) -> nn.Sequential:
    pad = (k - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def sep_conv(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (dilated) + pointwise 1x1, each with BN + ReLU."""
    return nn.Sequential(conv_bn_relu(cin, cin, 3, dilation, groups=cin), conv_bn_relu(cin, cout))


class ASPPLite(nn.Module):
    """Atrous spatial pyramid pooling with separable atrous branches."""

    def __init__(self, cin: int, cout: int = 128, rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout)] + [sep_conv(cin, cout, r) for r in rates]
        )
        self.pool = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(conv_bn_relu(cout * (len(rates) + 2), cout), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))
        outs.append(pooled.expand_as(outs[0]))
        return self.project(torch.cat(outs, dim=1))


class SegNet(nn.Module):
    """Backbone + ASPP-lite (+ stride-4 decoder): ``forward(x) -> logits (B, C, H, W)``."""

    def __init__(
        self,
        backbone: str | Backbone = "mobilenet_v2",
        num_classes: int = 2,
        pretrained: str | Path | None = None,
        output_stride: int = 16,
        decoder: bool = True,
        channels: int = 128,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"SegNet: num_classes must be >= 1, got {num_classes}")
        self.backbone = resolve_backbone(backbone, output_stride, pretrained)
        self.num_classes = num_classes
        self.norm = InputNorm(self.backbone.mean, self.backbone.std)
        stride = self.backbone.strides["c5"]
        rates = tuple(max(1, r * 16 // stride) for r in (6, 12, 18))
        self.aspp = ASPPLite(self.backbone.channels["c5"], channels, rates)
        self.decoder = decoder
        if decoder:
            self.low = conv_bn_relu(self.backbone.channels["c2"], 32)
            self.fuse = sep_conv(channels + 32, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        feats = self.backbone(self.norm(x))
        y = self.aspp(feats["c5"])
        if self.decoder:
            low = self.low(feats["c2"])
            y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
            y = self.fuse(torch.cat([y, low], dim=1))
        logits = self.classifier(y)
        if upsample:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits
