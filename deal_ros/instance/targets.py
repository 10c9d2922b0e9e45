"""FCOS target assignment (Tian et al., 2019), with CondInst's centre sampling.

A location (x, y) of level i (stride s_i) is positive for box g = (x0, y0, x1, y1) when

    - it lies in the centre region of g: |x - cx| < r s_i and |y - cy| < r s_i, clipped to g
      (centre sampling, r = 1.5), and
    - its largest distance to the sides, m = max(l, t, r, b), falls in the level's range:
      [0, S0] for P3, [S0, S1] for P4, [S1, inf) for P5 (``sizes_of_interest`` = (S0, S1));

among several such boxes it takes the one of smallest area. Targets: the class, the
distances (l, t, r, b) = (x - x0, y - y0, x1 - x, y1 - y) and the box's index in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from deal_ros.losses.fcos import centerness_target


@dataclass
class Targets:
    """Per-location targets (B, L) and the batch's ground-truth boxes, flattened."""

    labels: torch.Tensor  # (B, L) long: 0..K-1, -1 background
    reg: torch.Tensor  # (B, L, 4) l, t, r, b pixels (meaningful where labels >= 0)
    gt_index: torch.Tensor  # (B, L) long index into gt_boxes, -1 background
    gt_boxes: torch.Tensor  # (G, 4) x0, y0, x1, y1 of every box of the batch
    gt_classes: torch.Tensor  # (G,) long 0..K-1
    gt_image: torch.Tensor  # (G,) long image index

    @property
    def positive(self) -> torch.Tensor:
        return self.labels >= 0

    def centerness(self) -> torch.Tensor:
        """c* of the positive locations, in ``positive`` order."""
        return centerness_target(self.reg[self.positive])


def level_ranges(sizes_of_interest: Sequence[float], device=None) -> torch.Tensor:
    """(3, 2) [low, high] of max(l, t, r, b) per level."""
    s0, s1 = (float(v) for v in sizes_of_interest)
    return torch.tensor([[0.0, s0], [s0, s1], [s1, float("inf")]], device=device)


def assign_image(
    locations: torch.Tensor,
    level: torch.Tensor,
    boxes: torch.Tensor,
    strides: torch.Tensor,
    ranges: torch.Tensor,
    radius: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gt index per location (L,) with -1 for background, reg targets (L, 4)) of one image;
    ``boxes`` (G, 4) x0, y0, x1, y1."""
    n_loc = locations.shape[0]
    if boxes.shape[0] == 0:
        return (
            torch.full((n_loc,), -1, dtype=torch.long, device=locations.device),
            locations.new_zeros((n_loc, 4)),
        )
    x, y = locations[:, 0:1], locations[:, 1:2]
    x0, y0, x1, y1 = (boxes[:, k][None] for k in range(4))
    reg = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)  # (L, G, 4)
    rs = (radius * strides[level])[:, None]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    in_centre = (
        (x > torch.maximum(cx - rs, x0))
        & (x < torch.minimum(cx + rs, x1))
        & (y > torch.maximum(cy - rs, y0))
        & (y < torch.minimum(cy + rs, y1))
    )
    m = reg.amax(2)
    lo, hi = ranges[level, 0:1], ranges[level, 1:2]
    ok = in_centre & (reg.amin(2) > 0) & (m >= lo) & (m <= hi)
    area = ((x1 - x0) * (y1 - y0)).expand(n_loc, -1)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(1)
    gt = torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))
    return gt, reg[torch.arange(n_loc, device=reg.device), best.clamp_min(0)]


def fcos_targets(
    locations: torch.Tensor,
    level: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    strides: Sequence[int] = (8, 16, 32),
    sizes_of_interest: Sequence[float] = (64.0, 128.0),
    radius: float = 1.5,
) -> Targets:
    """Targets of a batch: ``boxes[b]`` (G_b, 5) rows class_id (1..K), x0, y0, x1, y1."""
    device = locations.device
    st = torch.as_tensor(strides, dtype=locations.dtype, device=device)
    ranges = level_ranges(sizes_of_interest, device)
    labels, regs, gts, all_boxes, all_cls, all_img = [], [], [], [], [], []
    offset = 0
    for b, bx in enumerate(boxes):
        bx = bx.to(device=device, dtype=locations.dtype).reshape(-1, 5)
        gt, reg = assign_image(locations, level, bx[:, 1:], st, ranges, radius)
        cls = bx[:, 0].long() - 1
        labels.append(torch.where(gt >= 0, cls[gt.clamp_min(0)] if len(cls) else gt, gt))
        gts.append(torch.where(gt >= 0, gt + offset, gt))
        regs.append(reg)
        all_boxes.append(bx[:, 1:])
        all_cls.append(cls)
        all_img.append(torch.full((bx.shape[0],), b, dtype=torch.long, device=device))
        offset += bx.shape[0]
    return Targets(
        labels=torch.stack(labels),
        reg=torch.stack(regs),
        gt_index=torch.stack(gts),
        gt_boxes=torch.cat(all_boxes),
        gt_classes=torch.cat(all_cls),
        gt_image=torch.cat(all_img),
    )
