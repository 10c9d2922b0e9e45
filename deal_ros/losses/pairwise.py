"""The pairwise "same label" term shared by box-supervised mask losses (BoxInst's colour term,
boxinst.py, and the depth consistency term, depth_consistency.py).

For the K*K - 1 neighbours j of each pixel i (neighbours.py: 3x3 kernel, dilation 2) and mask
probabilities m = sigmoid(logits), the probability that i and j carry the same label is

    P(y_ij = 1) = m_i m_j + (1 - m_i)(1 - m_j)

computed in log space from the logits: log P = logaddexp(log m_i + log m_j,
log(1 - m_i) + log(1 - m_j)), with log m = logsigmoid(x) and log(1 - m) = logsigmoid(-x).
A pairwise loss weighs the pairs it trusts (w_ij >= 0) and averages:

    L = -(sum_ij w_ij log P(y_ij = 1)) / max(sum_ij w_ij, 1)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import as_instance_maps
from .neighbours import neighbours

__all__ = ["log_same_prob", "pairwise_affinity_loss"]


def log_same_prob(
    mask_logits: torch.Tensor, kernel_size: int = 3, dilation: int = 2
) -> torch.Tensor:
    """log P(y_ij = 1) = log(m_i m_j + (1-m_i)(1-m_j)), m = sigmoid(logits): (N,K*K-1,H,W)."""
    x = as_instance_maps("mask_logits", mask_logits)
    fg, bg = F.logsigmoid(x), F.logsigmoid(-x)
    same_fg = fg + neighbours(fg, kernel_size, dilation)[:, 0]
    same_bg = bg + neighbours(bg, kernel_size, dilation)[:, 0]
    return torch.logaddexp(same_fg, same_bg)


def pairwise_affinity_loss(
    mask_logits: torch.Tensor,
    pair_weights: torch.Tensor,
    kernel_size: int = 3,
    dilation: int = 2,
    extra_count: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """-(sum w log P(same)) / max(sum w + extra_count, 1) for pair weights w (N or 1, K*K-1,
    H, W); ``extra_count``: pairs another term counts, so that both share one mean."""
    logp = log_same_prob(mask_logits, kernel_size, dilation)
    w = pair_weights.to(logp.dtype)
    return -(logp * w).sum() / (w.sum() + extra_count).clamp_min(1.0)
