"""A small feature pyramid (Lin et al., 2017) over a project backbone: P3, P4, P5.

    P5 = conv3x3(lat5(C5))
    P4 = conv3x3(lat4(C4) + up(lat5(C5)))          lat = 1x1 conv, up = nearest to C4's size
    P3 = conv3x3(lat3(C3) + up(lat4(C4) + ...))

CondInst/FCOS add P6 and P7 (strides 64, 128) for large objects; at the input sizes this
project trains on (a few hundred pixels) P3-P5 cover the objects (our choice).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = ("c3", "c4", "c5")


class FPN(nn.Module):
    """``forward({"c3", "c4", "c5"}) -> [P3, P4, P5]`` with ``channels`` channels each."""

    def __init__(self, in_channels: dict[str, int], channels: int = 64) -> None:
        super().__init__()
        missing = [lv for lv in LEVELS if lv not in in_channels]
        if missing:
            raise ValueError(f"FPN: backbone has no level(s) {', '.join(missing)}")
        self.lateral = nn.ModuleList(nn.Conv2d(in_channels[lv], channels, 1) for lv in LEVELS)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in LEVELS)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, feats: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        top = self.lateral[-1](feats[LEVELS[-1]])
        outs = [self.output[-1](top)]
        for i in range(len(LEVELS) - 2, -1, -1):
            lat = self.lateral[i](feats[LEVELS[i]])
            top = lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
            outs.insert(0, self.output[i](top))
        return outs
