"""A synthetic scene for testing and benchmarking the dense CRF: an RGB image with known
ground truth and a noisy, coarse class probability map like an upsampled CAM (our choice)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticCRFCase", "synthetic_crf_case"]


@dataclass(frozen=True)
class SyntheticCRFCase:
    image: np.ndarray  # (H,W,3) uint8
    gt: np.ndarray  # (H,W) int64 in {0, 1, 2}: background, disc, rectangle
    probs: np.ndarray  # (3,H,W) float32, sums to 1 per pixel


def _upsample_bilinear(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """(C,h0,w0) -> (C,h,w), align-corners=False bilinear, numpy only."""
    _, h0, w0 = x.shape
    ys = np.clip((np.arange(h) + 0.5) * h0 / h - 0.5, 0, h0 - 1)
    xs = np.clip((np.arange(w) + 0.5) * w0 / w - 0.5, 0, w0 - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h0 - 1), np.minimum(x0 + 1, w0 - 1)
    wy, wx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
    bot = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bot * wy


def synthetic_crf_case(
    h: int = 96,
    w: int = 128,
    *,
    seed: int = 0,
    coarse: int = 16,
    noise: float = 2.0,
    pixel_noise: float = 24.0,
) -> SyntheticCRFCase:
    """Background (a colour gradient), a disc (class 1) and a rectangle (class 2) in nearby
    colours, with Gaussian pixel noise of std ``pixel_noise``.

    probs = softmax(2 * coarse one-hot + logit noise): the one-hot ground truth is
    block-averaged by ``coarse`` and bilinearly upsampled (blurred, misplaced boundaries, as
    in an upsampled CAM), and ``noise`` is the std of the per-pixel logit noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    gt = np.zeros((h, w), np.int64)
    disc = (yy - 0.45 * h) ** 2 + (xx - 0.3 * w) ** 2 < (0.25 * min(h, w)) ** 2
    gt[disc] = 1
    gt[int(0.2 * h) : int(0.8 * h), int(0.6 * w) : int(0.85 * w)] = 2
    colours = np.array([[90, 110, 80], [150, 80, 70], [80, 90, 150]], np.float64)
    gradient = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=-1) * 50.0 - 25.0
    image = colours[gt] + gradient + rng.normal(0.0, pixel_noise, (h, w, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    onehot = np.eye(3)[gt].transpose(2, 0, 1)  # (3,H,W)
    hc, wc = -(-h // coarse), -(-w // coarse)
    pad = np.zeros((3, hc * coarse, wc * coarse))
    pad[:, :h, :w] = onehot
    pad[0, h:, :] = 1.0
    pad[0, :, w:] = 1.0
    small = pad.reshape(3, hc, coarse, wc, coarse).mean(axis=(2, 4))
    logits = 2.0 * _upsample_bilinear(small, h, w) + rng.normal(0.0, noise, (3, h, w))
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    probs = (e / e.sum(axis=0, keepdims=True)).astype(np.float32)
    return SyntheticCRFCase(image=image, gt=gt, probs=probs)
