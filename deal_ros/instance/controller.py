"""The controller: per-location parameters of the dynamic mask head (CondInst, Tian et al. 2020).

A 3x3 conv on the box tower predicts, at every location, all the weights and biases of the
instance's dynamic head; ``DynamicLayout`` says how the flat vector splits into layers.
CondInst: three 1x1 layers (C0 -> 8 -> 8 -> 1, C0 = 8 mask channels + 2 relative
coordinates) = 169 parameters. DG-MaskHead (Yu, Yan et al.): the last layer M_m (8 -> 1)
gets a twin M_d (8 -> 1) predicting the instance depth: 9 more, 178 in all.
Layout of the vector (CondInst's): all weights, layer by layer (row-major (out, in)), then all
biases.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DynamicLayout:
    """Layer shapes of the dynamic head: ``layers`` = ((name, out, in), ...)."""

    in_channels: int  # mask-branch channels + 2 coordinates
    channels: int = 8
    depth_guided: bool = True

    @property
    def layers(self) -> tuple[tuple[str, int, int], ...]:
        c = self.channels
        out = [("l1", c, self.in_channels), ("l2", c, c), ("mask", 1, c)]
        if self.depth_guided:
            out.append(("depth", 1, c))
        return tuple(out)

    @property
    def num_params(self) -> int:
        return sum(o * i + o for _, o, i in self.layers)

    def split(self, params: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(N, num_params) -> {name: (weight (N,out,in), bias (N,out,1))}."""
        if params.dim() != 2 or params.shape[1] != self.num_params:
            raise ValueError(
                f"dynamic params: expected (N,{self.num_params}), got {tuple(params.shape)}"
            )
        n = params.shape[0]
        sizes = [o * i for _, o, i in self.layers] + [o for _, o, _ in self.layers]
        chunks = torch.split(params, sizes, dim=1)
        k = len(self.layers)
        return {
            name: (chunks[j].reshape(n, o, i), chunks[k + j].reshape(n, o, 1))
            for j, (name, o, i) in enumerate(self.layers)
        }


class Controller(nn.Module):
    """3x3 conv: tower features (B,C,H,W) -> dynamic parameters (B,num_params,H,W)."""

    def __init__(self, channels: int, layout: DynamicLayout) -> None:
        super().__init__()
        self.layout = layout
        self.conv = nn.Conv2d(channels, layout.num_params, 3, padding=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
