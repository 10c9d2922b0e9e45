"""Losses: one file per loss, each with its paper formula in the docstring.

- DEAL (depth edge alignment): ``edge_alignment_loss``, ``DEALLoss``. (The depth noise model
  of the robustness runs is data, not a loss: ``deal_ros.data.depth_noise.DepthNoise``.)
- CAM classification: ``gap_multilabel_loss``, ``importance_sampling_loss``, ``isl_loss``,
  ``ISLLoss``; feature similarity ``feature_similarity_loss``, ``FSLLoss``.
- Segmentation, one call ``(logits_or_probas, labels, *, ignore_index=255, ...)``:
  ``cross_entropy``, ``focal_loss``, ``lovasz_softmax`` and their modules; ``build_seg_loss``.
- FCOS detection: ``sigmoid_focal_loss``, ``giou_loss``, ``centerness_loss``,
  ``centerness_target``.
- Box supervision: ``projection_loss``, ``pairwise_color_loss``, ``depth_consistency_loss``,
  ``reliable_dice_loss``, ``depth_aware_match`` (Hungarian), ``rgb_to_lab``, ``BoxInstLoss``.
"""

from .boxinst import (
    BoxInstLoss,
    color_similarity,
    linear_warmup,
    log_same_prob,
    pairwise_affinity_loss,
    pairwise_color_loss,
    projection_loss,
)
from .cross_entropy import CrossEntropyLoss, cross_entropy
from .deal import DEALLoss, edge_activation, edge_alignment_loss
from .depth_consistency import depth_consistency_loss, depth_consistency_score, depth_similarity
from .dice import dice_loss, reliable_dice_loss
from .fcos import centerness_loss, centerness_target, giou_loss, sigmoid_focal_loss
from .focal import FocalLoss, focal_loss
from .fsl import FSLLoss, feature_similarity_loss
from .isl import ISLLoss, gap_multilabel_loss, importance_sampling_loss, isl_loss
from .lab import rgb_to_lab
from .lovasz import LovaszSoftmaxLoss, lovasz_softmax
from .matching import (
    MatchResult,
    box_iou,
    depth_aware_match,
    hungarian_match,
    masks_to_boxes,
    matching_scores,
)
from .registry import SEG_LOSSES, build_seg_loss

__all__ = [
    "SEG_LOSSES",
    "BoxInstLoss",
    "CrossEntropyLoss",
    "DEALLoss",
    "FSLLoss",
    "FocalLoss",
    "ISLLoss",
    "LovaszSoftmaxLoss",
    "MatchResult",
    "box_iou",
    "build_seg_loss",
    "centerness_loss",
    "centerness_target",
    "color_similarity",
    "cross_entropy",
    "depth_aware_match",
    "depth_consistency_loss",
    "depth_consistency_score",
    "depth_similarity",
    "dice_loss",
    "edge_activation",
    "edge_alignment_loss",
    "feature_similarity_loss",
    "focal_loss",
    "gap_multilabel_loss",
    "giou_loss",
    "hungarian_match",
    "importance_sampling_loss",
    "isl_loss",
    "linear_warmup",
    "log_same_prob",
    "lovasz_softmax",
    "masks_to_boxes",
    "matching_scores",
    "pairwise_affinity_loss",
    "pairwise_color_loss",
    "projection_loss",
    "reliable_dice_loss",
    "rgb_to_lab",
    "sigmoid_focal_loss",
]
