"""The dynamic mask head, with the depth-guided variant DG-MaskHead (Yu, Yan et al., Eq. 1).

For instance n (parameters from the controller at its location, see ``controller.py``):

    F0 = [rel_coords_n ; mask_feats]                    (C0 = 2 + mask channels)
    F1 = M2(M1(F0))                                      1x1 convs + ReLU, 8 channels
    P_depth = sigmoid(M_d(F1))
    P_mask  = sigmoid(M_m(F1) * P_depth)                 (CondInst: P_mask = sigmoid(M_m(F1)))

Every 1x1 "convolution" is a batched matrix product (N, out, in) @ (N, in, HW), so the head
runs for all instances at once and exports to ONNX. Relative coordinates (CondInst): the
instance's location minus each mask-feature location, divided by the size of interest of the
instance's FPN level.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deal_ros.instance.controller import DynamicLayout


def grid_locations(h: int, w: int, stride: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h*w, 2) x, y pixel centres of a stride-``stride`` grid: (j*s + s//2, i*s + s//2)."""
    ys = torch.arange(h, device=device, dtype=dtype) * stride + stride // 2
    xs = torch.arange(w, device=device, dtype=dtype) * stride + stride // 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


class DynamicMaskHead(nn.Module):
    """``forward(mask_feats (B,C,h,w), params (N,P), locations (N,2), image_index (N,),
    soi (N,)) -> (mask_logits (N,1,h,w), depth (N,1,h,w) or None)``.

    ``mask_logits`` are the logits of P_mask (M_m(F1) * P_depth for DG-MaskHead)."""

    def __init__(
        self, mask_channels: int, channels: int = 8, depth_guided: bool = True, stride: int = 4
    ) -> None:
        super().__init__()
        self.layout = DynamicLayout(mask_channels + 2, channels, depth_guided)
        self.stride = stride

    @property
    def num_params(self) -> int:
        return self.layout.num_params

    def forward(
        self,
        mask_feats: torch.Tensor,
        params: torch.Tensor,
        locations: torch.Tensor,
        image_index: torch.Tensor,
        soi: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, c, h, w = mask_feats.shape
        n = params.shape[0]
        grid = grid_locations(h, w, self.stride, mask_feats.device, mask_feats.dtype)
        rel = (locations[:, None, :] - grid[None]) / soi.to(grid.dtype)[:, None, None]
        feats = mask_feats.reshape(b, c, h * w)[image_index]  # (N, C, HW)
        x = torch.cat([rel.permute(0, 2, 1), feats], dim=1)  # (N, 2 + C, HW)
        p = self.layout.split(params)
        x = F.relu(torch.baddbmm(p["l1"][1], p["l1"][0], x))
        f1 = F.relu(torch.baddbmm(p["l2"][1], p["l2"][0], x))
        logits = torch.baddbmm(p["mask"][1], p["mask"][0], f1)
        depth = None
        if self.layout.depth_guided:
            depth = torch.sigmoid(torch.baddbmm(p["depth"][1], p["depth"][0], f1))
            logits = logits * depth
            depth = depth.reshape(n, 1, h, w)
        return logits.reshape(n, 1, h, w), depth
