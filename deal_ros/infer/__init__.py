"""Inference over a model bundle: ONNX Runtime, numpy and PIL only (never torch, never rclpy).

``Runtime(bundle_dir, providers="auto")`` loads and checks a bundle; ``runtime.segment(rgb)``
gives the class mask, the CAM heat map and an rgb8 overlay at the input image's size.
"""

from deal_ros.infer.bundle import Bundle, BundleError, read_bundle
from deal_ros.infer.runtime import InferenceResult, Runtime

__all__ = ["Bundle", "BundleError", "InferenceResult", "Runtime", "read_bundle"]
