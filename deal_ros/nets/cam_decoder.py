"""Finer CAMs: a light top-down decoder, and the CAM-cell-centre convention.

Cell centres. A 3x3 convolution with stride s and padding 1 (or dilation d and padding d)
centres its output j on input pixel s*j, so the cells of a stride-S CNN feature map lie at
input pixels S*j (j = 0, 1, ...). Everything downstream of the CAM net (DEAL's depth
resampling, the pseudo labels' bilinear upsampling, the runtime's CAM -> mask) resamples with
``align_corners=False``, i.e. it takes cell j to cover pixels [S j, S j + S) with its centre
at S*j + (S - 1)/2: 3.5 px right and down of where the network computed it at stride 8.
``to_cell_centres`` resamples the CAM grid once, inside the net, at the positions
j + (S - 1)/(2S), so every consumer sees each CAM value where it belongs (our fix; the offset
is (S - 1)/2 px, the same in both axes).

Decoder (our choice; CAM nets usually classify the last feature map only). A stride-16
backbone is 4x cheaper than a dilated stride-8 one on CPU (MobileNetV2 at 240x320, batch 8,
forward + backward: 2.1 vs 8.4 CPU-s), and the decoder brings the CAMs back to stride 8 or 4:

    p_top = conv1x1(c5)                          (stride of c5, 16 or 8)
    p_l   = conv1x1(c_l) + up(p_{l+1})           for l = c3 (stride 8), c2 (stride 4)
    F     = ReLU(BN(conv3x3(p_finest)))          the CAM features; CAM = W F (1x1, no bias)

``up`` resamples between the cell-centre grids exactly (cell j of the finer map at S_f j is
coordinate S_f j / S_c of the coarser map, linear interpolation, borders clamped).
"""

from __future__ import annotations

import torch
from torch import nn

CAM_DECODERS = ("none", "s8", "s4")
_LEVELS = {"s8": ("c3",), "s4": ("c3", "c2")}


def sample_lines(x: torch.Tensor, pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``dim`` at fractional indices ``pos`` (clamped)."""
    n = x.shape[dim]
    pos = pos.clamp(0, n - 1)
    i0 = pos.floor().long().clamp(0, n - 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    t = (pos - i0.to(pos.dtype)).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = -1
    t = t.view(shape)
    return x.index_select(dim, i0) * (1 - t) + x.index_select(dim, i1) * t


def resample_cells(
    x: torch.Tensor, size: tuple[int, int], src_stride: int, dst_stride: int
) -> torch.Tensor:
    """Map (B,C,h,w) on a stride-``src_stride`` cell grid to ``size`` cells of stride
    ``dst_stride`` (cell j at pixel stride*j on both grids)."""
    r = dst_stride / src_stride
    ys = torch.arange(size[0], device=x.device, dtype=torch.float32) * r
    xs = torch.arange(size[1], device=x.device, dtype=torch.float32) * r
    return sample_lines(sample_lines(x, ys, 2), xs, 3)


def to_cell_centres(cam: torch.Tensor, stride: int) -> torch.Tensor:
    """Resample a stride-``stride`` CNN grid (cells at stride*j) to the align_corners=False
    convention (cells at stride*j + (stride-1)/2), same size (module docstring)."""
    off = (stride - 1) / (2.0 * stride)
    h, w = cam.shape[-2:]
    ys = torch.arange(h, device=cam.device, dtype=torch.float32) + off
    xs = torch.arange(w, device=cam.device, dtype=torch.float32) + off
    return sample_lines(sample_lines(cam, ys, 2), xs, 3)


class CAMDecoder(nn.Module):
    """Top-down decoder from c5 to stride 8 (``"s8"``) or 4 (``"s4"``); module docstring."""

    def __init__(
        self, kind: str, channels: dict[str, int], strides: dict[str, int], width: int = 64
    ) -> None:
        super().__init__()
        if kind not in _LEVELS:
            raise ValueError(f"CAM decoder: expected one of {', '.join(_LEVELS)}, got {kind!r}")
        self.levels = _LEVELS[kind]
        self.strides = dict(strides)
        self.top = nn.Conv2d(channels["c5"], width, 1)
        self.lateral = nn.ModuleDict({lv: nn.Conv2d(channels[lv], width, 1) for lv in self.levels})
        self.out = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.channels = width
        self.stride = self.strides[self.levels[-1]]

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        p, s = self.top(feats["c5"]), self.strides["c5"]
        for lv in self.levels:
            lat, s_l = self.lateral[lv](feats[lv]), self.strides[lv]
            up = p if s_l == s else resample_cells(p, tuple(lat.shape[-2:]), s, s_l)
            p, s = lat + up, s_l
        return self.out(p)
