"""Image-level CAM classification losses: GAP and importance sampling (Jonnarth & Felsberg).

GAP loss (the standard CAM classification loss), logits map z (B,K,H,W), labels y (B,K):

    s_k   = (1/HW) sum_ij z_k,ij
    L_gap = -(1/BK) sum_b,k [y_k log sig(s_k) + (1 - y_k) log sig(-s_k)]

(``F.multilabel_soft_margin_loss`` on the globally average pooled logits).

Importance sampling loss, the "binomial" variant of the authors' public code (arvijj/hfpl):
for each image b and class k, draw n pixel indices with replacement from the multinomial
over pixels with weights  sig(z_k,ij) + 1e-5  (the sampling carries no gradient), and apply
the multi-label soft margin loss to the sampled LOGITS:

    L_is = -(1/BKn) sum_b,k,s [y_k log sig(z_k,(s)) + (1-y_k) log sig(-z_k,(s))]

    L = (1 - lambda) L_gap + lambda L_is,     lambda = 0.2, n = 10 (public defaults)

(The older ICAM variant sampled softmax probabilities, mixed with 0.8 and n = 100: pass
``mix=0.8, num_samples=100`` for its weights; its sampling rule is not reproduced.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_ndim, check_same


def _check(logits: torch.Tensor, labels: torch.Tensor) -> None:
    check_ndim("logits", logits, 4, "(B,K,H,W)")
    check_ndim("labels", labels, 2, "(B,K)")
    check_same("logits", logits.shape[:2], "labels", labels.shape, "(B,K)")


def gap_multilabel_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft margin loss on the global average pooled logits map (B,K,H,W)."""
    _check(logits, labels)
    return F.multilabel_soft_margin_loss(logits.mean((2, 3)), labels.to(logits.dtype))


def sample_pixels(
    logits: torch.Tensor, num_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Importance-sampled logits (B,K,n): pixels drawn with weight sigmoid(logit) + 1e-5."""
    b, k, h, w = logits.shape
    flat = logits.reshape(b * k, h * w)
    weights = torch.sigmoid(flat.detach()) + 1e-5
    idx = torch.multinomial(weights, num_samples, replacement=True, generator=generator)
    return flat.gather(1, idx).reshape(b, k, num_samples)


def importance_sampling_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_samples: int = 10,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_is: multi-label soft margin loss on ``num_samples`` importance-sampled logits."""
    _check(logits, labels)
    if num_samples < 1:
        raise ValueError(f"num_samples: expected >= 1, got {num_samples}")
    samples = sample_pixels(logits, int(num_samples), generator)
    target = labels.to(logits.dtype).unsqueeze(-1).expand_as(samples)
    return F.binary_cross_entropy_with_logits(samples, target)


def isl_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mix: float = 0.2,
    num_samples: int = 10,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L = (1 - mix) L_gap + mix L_is."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix: expected a value in [0, 1], got {mix}")
    loss = (1.0 - mix) * gap_multilabel_loss(logits, labels)
    if mix > 0:
        loss = loss + mix * importance_sampling_loss(logits, labels, num_samples, generator)
    return loss


class ISLLoss(nn.Module):
    """Module form of :func:`isl_loss`: ``forward(logits (B,K,H,W), labels (B,K))``."""

    def __init__(self, mix: float = 0.2, num_samples: int = 10) -> None:
        super().__init__()
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"ISLLoss mix: expected a value in [0, 1], got {mix}")
        if num_samples < 1:
            raise ValueError(f"ISLLoss num_samples: expected >= 1, got {num_samples}")
        self.mix, self.num_samples = float(mix), int(num_samples)

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return isl_loss(logits, labels, self.mix, self.num_samples, generator)
