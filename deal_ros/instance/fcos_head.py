"""The FCOS head (Tian et al., 2019) with CondInst's controller, shared over P3-P5.

Two towers of ``num_convs`` x (3x3 conv + GroupNorm + ReLU) (FCOS: 4), then per location:
class logits (K, sigmoid one-vs-rest), box distances l, t, r, b in pixels
(ReLU(scale_level * x) * stride, FCOS's ``norm_reg_targets``), centerness logit and the
dynamic mask-head parameters (both on the box tower, as CondInst). Class logits start at
the prior 0.01 (bias -log(99)), as FCOS. The distance outputs start at one stride (bias 1,
ours; FCOS: 0): with bias 0 about half of them start below zero, where the ReLU passes no
gradient, and on a short run a seed whose box tower starts that way never recovers (GIoU
0.64 for all of 150 steps, box AP 3.0 at seed 3 of the colour-overlap benchmark,
bench/README.md). ``controller_grad`` scales the gradient the mask losses send into the box
tower through the controller (1: CondInst; 0: the tower learns from the box losses only,
the controller's conv still learns; ours); the forward pass is the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deal_ros.instance.controller import Controller, DynamicLayout


def tower(channels: int, num_convs: int) -> nn.Sequential:
    groups = math.gcd(32, channels)
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels),
            nn.ReLU(True),
        ]
    return nn.Sequential(*layers)


class FCOSHead(nn.Module):
    """``forward([P3, P4, P5]) -> dict of per-level lists: "logits" (B,K,h,w), "reg" (B,4,h,w)
    pixels, "ctr" (B,1,h,w) logits, "params" (B,P,h,w)``."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        layout: DynamicLayout,
        strides: tuple[int, ...] = (8, 16, 32),
        num_convs: int = 2,
        prior_prob: float = 0.01,
        controller_grad: float = 1.0,
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.controller_grad = float(controller_grad)
        self.cls_tower = tower(channels, num_convs)
        self.box_tower = tower(channels, num_convs)
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.ctrness = nn.Conv2d(channels, 1, 3, padding=1)
        self.controller = Controller(channels, layout)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))
        for m in [*self.cls_tower, *self.box_tower, self.cls_logits, self.bbox_pred, self.ctrness]:
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.constant_(self.bbox_pred.bias, 1.0)

    def _to_controller(self, b: torch.Tensor) -> torch.Tensor:
        """``b`` with its backward gradient scaled by ``controller_grad``."""
        if self.controller_grad == 1.0:
            return b
        d = b.detach()
        return d + self.controller_grad * (b - d) if self.controller_grad else d

    def forward(self, pyramid: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        out: dict[str, list[torch.Tensor]] = {"logits": [], "reg": [], "ctr": [], "params": []}
        for i, p in enumerate(pyramid):
            c, b = self.cls_tower(p), self.box_tower(p)
            out["logits"].append(self.cls_logits(c))
            out["reg"].append(F.relu(self.scales[i] * self.bbox_pred(b)) * self.strides[i])
            out["ctr"].append(self.ctrness(b))
            out["params"].append(self.controller(self._to_controller(b)))
        return out
