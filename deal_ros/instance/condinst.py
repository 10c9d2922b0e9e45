"""CondInst (Tian et al., ECCV 2020) with the depth-guided mask head, in plain torch.

    model = CondInst(num_classes=3, cfg=BoxModelConfig(pretrained=None))
    dense = model(images)                          # images (B,3,H,W) RGB in [0, 1]
    logits, depth = model.masks(dense, loc_index, image_index)   # per instance, mask stride
    results = model.predict(images)                # list of Instances per image

Backbone (``deal_ros.nets``, its normalisation inside the model) -> FPN P3-P5 -> FCOS head +
controller at every location; mask branch -> shared mask features; each instance's
dynamic head (``dynamic_mask_head.py``) turns them into its mask (and, DG-MaskHead, its depth).
The pseudo depth is needed only to train: inference takes RGB alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deal_ros.instance.config import BoxModelConfig, InferConfig
from deal_ros.instance.dynamic_mask_head import DynamicMaskHead, grid_locations
from deal_ros.instance.fcos_head import FCOSHead
from deal_ros.instance.fpn import FPN
from deal_ros.instance.inference import nms, select
from deal_ros.instance.mask_branch import MaskBranch
from deal_ros.nets import InputNorm, build_backbone

STRIDES = (8, 16, 32)


@dataclass
class Dense:
    """Dense outputs, levels flattened and concatenated (L locations over P3-P5)."""

    logits: torch.Tensor  # (B, L, K)
    reg: torch.Tensor  # (B, L, 4) l, t, r, b in pixels
    ctr: torch.Tensor  # (B, L)
    params: torch.Tensor  # (B, L, P)
    locations: torch.Tensor  # (L, 2) x, y pixels
    level: torch.Tensor  # (L,) 0..2
    mask_feats: torch.Tensor  # (B, C, H/s, W/s)
    image_size: tuple[int, int]


@dataclass
class Instances:
    """Detections of one image at the network input size."""

    boxes: torch.Tensor  # (n, 4) x0, y0, x1, y1
    scores: torch.Tensor  # (n,)
    classes: torch.Tensor  # (n,) class ids 1..K
    masks: torch.Tensor  # (n, H, W) probabilities
    depth: torch.Tensor | None = None  # (n, H, W) DG-MaskHead instance depth in (0, 1)

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _flat(maps: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, m.shape[1]) for m in maps], 1)


class CondInst(nn.Module):
    """The instance segmenter (see the module docstring)."""

    def __init__(
        self, num_classes: int, cfg: BoxModelConfig | None = None, load_pretrained: bool = True
    ) -> None:
        super().__init__()
        cfg = cfg or BoxModelConfig()
        if num_classes < 1:
            raise ValueError(f"CondInst: num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.cfg = num_classes, cfg
        pretrained = cfg.pretrained if load_pretrained else None
        self.backbone = build_backbone(cfg.backbone, output_stride=32, pretrained=pretrained)
        self.norm = InputNorm(self.backbone.mean, self.backbone.std)
        self.fpn = FPN(self.backbone.channels, cfg.fpn_channels)
        self.mask_head = DynamicMaskHead(
            cfg.mask_channels, cfg.dynamic_channels, cfg.depth_guided, cfg.mask_stride
        )
        self.head = FCOSHead(
            cfg.fpn_channels, num_classes, self.mask_head.layout, STRIDES, cfg.head_convs,
            controller_grad=cfg.controller_grad,
        )  # fmt: skip
        self.mask_branch = MaskBranch(
            cfg.fpn_channels,
            cfg.mask_branch_channels,
            cfg.mask_channels,
            cfg.mask_branch_convs,
            cfg.mask_stride,
            self.backbone.channels.get("c2"),
        )
        s0, s1 = cfg.sizes_of_interest
        self.register_buffer("soi", torch.tensor([s0, s1, 2 * s1]), persistent=False)
        if cfg.freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    @property
    def mask_out_stride(self) -> int:
        return 4

    def train(self, mode: bool = True) -> CondInst:
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.backbone.eval()  # frozen ImageNet statistics
        return self

    # ------------------------------------------------------------------ dense
    def forward(self, images: torch.Tensor) -> Dense:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"CondInst: expected images (B,3,H,W), got {tuple(images.shape)}")
        x = self.norm(images)
        if self.cfg.freeze_backbone:
            with torch.no_grad():
                feats = self.backbone(x)
        else:
            feats = self.backbone(x)
        pyramid = self.fpn(feats)
        head = self.head(pyramid)
        locs, levels = [], []
        for i, (p, s) in enumerate(zip(pyramid, STRIDES)):
            g = grid_locations(p.shape[2], p.shape[3], s, images.device, images.dtype)
            locs.append(g)
            levels.append(torch.full((g.shape[0],), i, dtype=torch.long, device=images.device))
        return Dense(
            logits=_flat(head["logits"]),
            reg=_flat(head["reg"]),
            ctr=_flat(head["ctr"])[..., 0],
            params=_flat(head["params"]),
            locations=torch.cat(locs),
            level=torch.cat(levels),
            mask_feats=self.mask_branch(pyramid, feats.get("c2")),
            image_size=(int(images.shape[2]), int(images.shape[3])),
        )

    def masks(
        self, dense: Dense, loc_index: torch.Tensor, image_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mask logits (N,1,H/4,W/4) (and DG depth) of the instances at flat locations."""
        params = dense.params[image_index, loc_index]
        logits, depth = self.mask_head(
            dense.mask_feats,
            params,
            dense.locations[loc_index],
            image_index,
            self.soi[dense.level[loc_index]],
        )
        if self.cfg.mask_stride == 8:  # CondInst: computed at stride 8, upsampled to 4
            logits = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
            if depth is not None:
                depth = F.interpolate(depth, scale_factor=2, mode="bilinear", align_corners=False)
        return logits, depth

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, images: torch.Tensor, infer: InferConfig | None = None) -> list[Instances]:
        """Instances per image, masks at the input size (probabilities)."""
        infer = infer or InferConfig()
        dense = self(images)
        return [self._instances(dense, b, infer) for b in range(images.shape[0])]

    def _instances(self, dense: Dense, b: int, infer: InferConfig) -> Instances:
        h, w = dense.image_size
        c = select(
            dense.logits[b],
            dense.ctr[b],
            dense.reg[b],
            dense.locations,
            (h, w),
            infer.score_threshold,
            infer.pre_nms_topk,
        )
        keep = nms(c.boxes, c.scores, c.classes, infer.nms_threshold)[: infer.max_detections]
        loc = c.index[keep]
        if loc.numel() == 0:
            empty = dense.logits.new_zeros((0, h, w))
            return Instances(c.boxes[keep], c.scores[keep], c.classes[keep] + 1, empty)
        idx = torch.full_like(loc, b)
        logits, depth = self.masks(dense, loc, idx)
        probs = F.interpolate(
            torch.sigmoid(logits), size=(h, w), mode="bilinear", align_corners=False
        )[:, 0]
        if depth is not None:
            depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        return Instances(c.boxes[keep], c.scores[keep], c.classes[keep] + 1, probs, depth)
