"""Refinement of class probability maps: dense CRF (pydensecrf2 when installed, a torch
mean-field fallback always). Importing this package does not import torch."""

from deal_ros.refine.crf import CRFInputError, CRFParams, crf_labels, dense_crf, resolve_backend
from deal_ros.refine.crf_pydensecrf import pydensecrf_available

__all__ = [
    "CRFInputError",
    "CRFParams",
    "crf_labels",
    "dense_crf",
    "pydensecrf_available",
    "resolve_backend",
]
