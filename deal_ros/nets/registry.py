"""Backbones by name: ``build_backbone("mobilenet_v2", output_stride=16, pretrained="imagenet")``.

Names are case-insensitive and "-" equals "_". ``timm:<model>`` builds a timm model with
``features_only=True`` when timm is installed (optional; lazy import; GPU workstations).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deal_ros.errors import DealError
from deal_ros.nets.backbone import Backbone
from deal_ros.nets.efficientnet_lite import EfficientNetLite0
from deal_ros.nets.mobilenet_v2 import MobileNetV2
from deal_ros.nets.weights import load_pretrained

BACKBONES: dict[str, Callable[..., Backbone]] = {
    "mobilenet_v2": MobileNetV2,
    "efficientnet_lite0": EfficientNetLite0,
}
_ALIASES = {"mobilenetv2": "mobilenet_v2", "efficientnetlite0": "efficientnet_lite0"}


def canonical_name(name: str) -> str:
    """Normalise a backbone name ("MobileNet-V2" -> "mobilenet_v2"); unknown names fail."""
    if name.startswith("timm:"):
        return name
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key.replace("_", ""), key)
    if key not in BACKBONES:
        known = ", ".join(sorted(BACKBONES))
        raise DealError(f"backbone '{name}': unknown (known: {known}, or timm:<name> with timm)")
    return key


def build_backbone(
    name: str,
    output_stride: int = 32,
    pretrained: str | Path | None = None,
    strict: bool = True,
    **kw: object,
) -> Backbone:
    """Build a backbone and optionally load local pretrained weights ("imagenet" or a path)."""
    key = canonical_name(name)
    if key.startswith("timm:"):
        from deal_ros.nets.timm_backbone import TimmBackbone

        return TimmBackbone(key[len("timm:") :], output_stride, pretrained, **kw)
    backbone = BACKBONES[key](output_stride=output_stride, **kw)
    if pretrained is not None:
        load_pretrained(backbone, pretrained, strict=strict)
    return backbone


def resolve_backbone(
    backbone: str | Backbone, output_stride: int, pretrained: str | Path | None
) -> Backbone:
    """A head's backbone: built by name, or a given instance (with ``pretrained`` loaded)."""
    if isinstance(backbone, Backbone):
        if pretrained is not None:
            load_pretrained(backbone, pretrained)
        return backbone
    return build_backbone(backbone, output_stride, pretrained)
