"""What a trained segmenter predicts on one image: ``seg_probs`` (used by self-training, the
seg evaluation and the report's overlays)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deal_ros.train.data import image_tensor, resize_image


@torch.no_grad()
def seg_probs(
    net: nn.Module, rgb: np.ndarray, size: tuple[int, int], device, flip: bool = True
) -> np.ndarray:
    """Softmax probabilities (K+1, h, w) of one image at its own size."""
    x = resize_image(image_tensor(rgb), size).to(device)
    if flip:
        x = torch.cat([x, x.flip(-1)])
    logits = net(x).float()
    if flip:
        logits = (logits[:1] + logits[1:].flip(-1)) / 2
    logits = F.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return logits.softmax(1)[0].cpu().numpy()
