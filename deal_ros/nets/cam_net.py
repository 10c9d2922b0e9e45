"""CAM network: a backbone + a 1x1 classifier whose per-pixel scores are the class activation maps.

For an image x (RGB in [0, 1], B x 3 x H x W), features F = backbone(norm(x))["c5"] at stride
``output_stride`` (16 or 8 by dilation; 32 works too) and the 1x1 classifier W (K x C) give

    cam_logits[b, k] = W_k . F[b]                (+ b_k when ``bias=True``)
    logits[b, k]     = mean_ij cam_logits[b, k, i, j]    (global average pooling)

GAP of the CAM equals the classifier applied to the GAP of the features (the classifier is
linear), so training the image-level multi-label loss on ``logits`` trains the CAMs directly
(Zhou et al. 2016; the layout of SEAM / IRN). ``bias=False`` by default (our choice, as SEAM's
classifier): a bias only shifts every CAM by a constant, which ReLU + max normalisation then
turns into a spurious floor. The classifier starts from Xavier-uniform weights (our choice):
Kaiming fan-out (std sqrt(2 / K), 0.8 for K = 3) gave image logits around +-30 on ImageNet
features and a first loss of ~30; Xavier (bound sqrt(6 / (C + K))) keeps them near +-1.
``normalise_cams`` is the standard CAM normalisation: ReLU, then
divide each map by its own spatial maximum + eps (SEAM / IRN), giving CAMs in [0, 1].
Input normalisation (the backbone's mean / std) is part of the module, so an ONNX export takes
RGB in [0, 1] directly.

``decoder`` ("none", "s8", "s4"): classify a light top-down decoder's stride-8 or stride-4
features instead of c5 (``deal_ros.nets.cam_decoder``): finer CAMs from a cheaper stride-16
backbone. ``align=True`` resamples the CAM grid from the CNN's cell positions (stride*j) to
the align_corners=False convention every consumer uses (stride*j + (stride-1)/2); see
``cam_decoder.to_cell_centres``. Both are off by default (the layout of earlier runs).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deal_ros.nets.backbone import Backbone, InputNorm
from deal_ros.nets.cam_decoder import CAM_DECODERS, CAMDecoder, to_cell_centres
from deal_ros.nets.registry import resolve_backbone

CAM_EPS = 1e-5


def normalise_cams(cam_logits: torch.Tensor, eps: float = CAM_EPS) -> torch.Tensor:
    """ReLU(cam) / (max_ij ReLU(cam) + eps) per image and class: (B, K, h, w) in [0, 1]."""
    cams = F.relu(cam_logits)
    peak = cams.amax(dim=(-2, -1), keepdim=True)
    return cams / (peak + eps)


class CAMNet(nn.Module):
    """Backbone + 1x1 classifier: ``forward(x) -> {"logits": (B,K), "cam_logits": (B,K,h,w)}``."""

    def __init__(
        self,
        backbone: str | Backbone = "mobilenet_v2",
        num_classes: int = 1,
        pretrained: str | Path | None = None,
        output_stride: int = 16,
        bias: bool = False,
        dropout: float = 0.0,
        decoder: str = "none",
        decoder_channels: int = 64,
        align: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"CAMNet: num_classes must be >= 1, got {num_classes}")
        if decoder not in CAM_DECODERS:
            raise ValueError(f"CAMNet: decoder must be one of {CAM_DECODERS}, got {decoder!r}")
        self.backbone = resolve_backbone(backbone, output_stride, pretrained)
        self.num_classes = num_classes
        self.norm = InputNorm(self.backbone.mean, self.backbone.std)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.decoder = (
            CAMDecoder(decoder, self.backbone.channels, self.backbone.strides, decoder_channels)
            if decoder != "none"
            else None
        )
        self.align = bool(align)
        width = self.decoder.channels if self.decoder is not None else self.backbone.channels["c5"]
        self.classifier = nn.Conv2d(width, num_classes, 1, bias=bias)
        nn.init.xavier_uniform_(self.classifier.weight)  # see the module docstring
        if bias:
            nn.init.zeros_(self.classifier.bias)

    @property
    def cam_stride(self) -> int:
        """Stride of the CAMs with respect to the input image."""
        if self.decoder is not None:
            return self.decoder.stride
        return self.backbone.strides["c5"]

    def head_parameters(self) -> list[nn.Parameter]:
        """The new (not pretrained) layers: classifier and decoder."""
        head = list(self.classifier.parameters())
        return head + (list(self.decoder.parameters()) if self.decoder is not None else [])

    def forward(self, x: torch.Tensor, return_features: bool = False) -> dict[str, torch.Tensor]:
        levels = self.backbone(self.norm(x))
        feats = self.decoder(levels) if self.decoder is not None else levels["c5"]
        cam_logits = self.classifier(self.dropout(feats))
        if self.align:
            cam_logits = to_cell_centres(cam_logits, self.cam_stride)
        out = {"logits": cam_logits.mean(dim=(2, 3)), "cam_logits": cam_logits}
        if return_features:
            out["features"] = feats
        return out

    def cams(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised CAMs in [0, 1] at the CAM stride: (B, K, h, w)."""
        return normalise_cams(self.forward(x)["cam_logits"])

    def param_groups(self, lr: float, head_lr_mult: float = 10.0) -> list[dict[str, object]]:
        """Optimizer groups: pretrained backbone at ``lr``, new classifier at ``lr * mult``
        (the usual 10x of SEAM / IRN; our default, configurable)."""
        return [
            {"params": list(self.backbone.parameters()), "lr": lr},
            {"params": self.head_parameters(), "lr": lr * head_lr_mult},
        ]


class CAMExport(nn.Module):
    """Inference view of a CAMNet for ONNX: ``x -> (scores, cams)``.

    scores = sigmoid(logits) (B, K) image-level probabilities; cams = ``normalise_cams``
    (B, K, h, w) in [0, 1] at the CAM stride (upsampling is left to the runtime).
    """

    def __init__(self, net: CAMNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(x)
        return torch.sigmoid(out["logits"]), normalise_cams(out["cam_logits"])
