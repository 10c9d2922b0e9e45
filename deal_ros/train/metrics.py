"""Segmentation metrics (contract names): ``confusion_matrix``, ``miou``,
``miou_multiclass_only``, ... live in :mod:`deal_ros.eval.metrics` (shared by every method and
by the torch-free bundle evaluation); this module re-exports them, without a warning."""

from deal_ros.eval.metrics import (
    DEFAULT_THRESHOLDS,
    MetricsInputError,
    SegMetrics,
    cam_threshold_sweep,
    confusion_matrix,
    ground_truth_mask,
    iou_per_class,
    miou,
    miou_multiclass_only,
    pixel_accuracy,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MetricsInputError",
    "SegMetrics",
    "cam_threshold_sweep",
    "confusion_matrix",
    "ground_truth_mask",
    "iou_per_class",
    "miou",
    "miou_multiclass_only",
    "pixel_accuracy",
]
