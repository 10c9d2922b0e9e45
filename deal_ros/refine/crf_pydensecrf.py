"""Dense CRF through pydensecrf2 (imports as ``pydensecrf``): Krähenbühl's C++ permutohedral
lattice implementation, the reference used by AffinityNet, SEAM and IRN.

Same model as :mod:`deal_ros.refine.crf_torch`: unary -log p (clipped at 1e-5), Potts
Gaussian + bilateral kernels, symmetric kernel normalisation, mean-field updates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dense_crf_pydensecrf", "pydensecrf_available"]

_UNARY_CLIP = 1e-5


def pydensecrf_available() -> bool:
    """True when ``pydensecrf`` (from the pydensecrf2 distribution) imports."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def dense_crf_pydensecrf(
    image: np.ndarray,
    probs: np.ndarray,
    *,
    iterations: int,
    gauss_sxy: float,
    gauss_compat: float,
    bilateral_sxy: float,
    bilateral_srgb: float,
    bilateral_compat: float,
) -> np.ndarray:
    """Mean-field inference on validated inputs: image (H,W,3) uint8 C-contiguous, probs
    (K,H,W) float32 summing to 1 per pixel. Returns Q (K,H,W) float32."""
    import pydensecrf.densecrf as dcrf

    k, h, w = probs.shape
    unary = -np.log(np.maximum(probs, _UNARY_CLIP)).reshape(k, -1)
    crf = dcrf.DenseCRF2D(w, h, k)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=gauss_sxy, compat=gauss_compat)
    crf.addPairwiseBilateral(
        sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=image, compat=bilateral_compat
    )
    q = crf.inference(iterations)
    return np.asarray(q, dtype=np.float32).reshape(k, h, w)
