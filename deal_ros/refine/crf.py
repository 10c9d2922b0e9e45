"""Dense CRF refinement of class probability maps (CAM pseudo labels, segmenter outputs).

Fully connected CRF of Krähenbühl & Koltun (NIPS 2011), mean-field inference:

    Q_{t+1}(x_i = l) ∝ exp(-psi_u(x_i = l)
                           - sum_m w_m sum_{j != i} mu(l, x_j) k_m(f_i, f_j) Q_t(x_j))
    psi_u = -log p,  mu = Potts,
    k_gauss = exp(-|p_i - p_j|^2 / (2 gauss_sxy^2)),
    k_bilat = exp(-|p_i - p_j|^2 / (2 bilateral_sxy^2) - |I_i - I_j|^2 / (2 bilateral_srgb^2)).

Defaults are the usual WSSS settings (AffinityNet / SEAM): Gaussian sxy=3, compat=3; bilateral
sxy=80, srgb=13, compat=10; 10 iterations. IRN uses bilateral sxy=50, srgb=5
(:meth:`CRFParams.irn`).

Backends: ``"pydensecrf"`` (pydensecrf2, the C++ permutohedral lattice, the reference) and
``"torch"`` (always available; exact Gaussian kernel, sparse bilateral-grid approximation of
the bilateral kernel, see :mod:`deal_ros.refine.crf_torch`). ``"auto"`` picks pydensecrf when
it imports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from deal_ros.errors import DealError
from deal_ros.refine.crf_pydensecrf import dense_crf_pydensecrf, pydensecrf_available

__all__ = ["CRFInputError", "CRFParams", "crf_labels", "dense_crf", "resolve_backend"]

Backend = Literal["auto", "pydensecrf", "torch"]
_BACKENDS = ("auto", "pydensecrf", "torch")
_SUM_TOL = 1e-3  # relative deviation of sum_k p_k from 1 that is renormalised silently


class CRFInputError(DealError, ValueError):
    """Unusable input to the dense CRF: shapes, dtypes, NaN/inf, negative probabilities,
    bad parameters or an unavailable backend."""


@dataclass(frozen=True)
class CRFParams:
    """Dense CRF parameters; defaults are AffinityNet/SEAM's."""

    iterations: int = 10
    gauss_sxy: float = 3.0
    gauss_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, (int, np.integer)):
            raise CRFInputError(f"dense CRF: iterations must be an int, got {self.iterations!r}")
        if self.iterations < 0:
            raise CRFInputError(f"dense CRF: iterations must be >= 0, got {self.iterations}")
        object.__setattr__(self, "iterations", int(self.iterations))
        for name in ("gauss_sxy", "bilateral_sxy", "bilateral_srgb"):
            v = getattr(self, name)
            if not np.isfinite(v) or v <= 0:
                raise CRFInputError(f"dense CRF: {name} must be a finite number > 0, got {v!r}")
        for name in ("gauss_compat", "bilateral_compat"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise CRFInputError(f"dense CRF: {name} must be a finite number >= 0, got {v!r}")

    @classmethod
    def irn(cls) -> CRFParams:
        """IRN's bilateral setting (sxy=50, srgb=5), other values as the defaults."""
        return cls(bilateral_sxy=50.0, bilateral_srgb=5.0)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`dense_crf`."""
        return asdict(self)


def resolve_backend(backend: str) -> str:
    """``"auto"`` -> ``"pydensecrf"`` when it imports, else ``"torch"``; checks the name."""
    if backend not in _BACKENDS:
        raise CRFInputError(f"dense CRF: backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "pydensecrf" if pydensecrf_available() else "torch"
    if backend == "pydensecrf" and not pydensecrf_available():
        raise CRFInputError(
            "dense CRF: backend 'pydensecrf' requested but pydensecrf does not import "
            "(pip install pydensecrf2, or use backend='torch')"
        )
    return backend


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise CRFInputError(f"dense CRF: image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise CRFInputError(f"dense CRF: image must have shape (H,W,3), got {image.shape}")
    if image.dtype != np.uint8:
        raise CRFInputError(f"dense CRF: image must be uint8 RGB, got dtype {image.dtype}")
    if not (image.flags.c_contiguous and image.flags.writeable):  # pydensecrf needs both
        image = np.array(image, order="C", copy=True)
    return image


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor; no torch import needed
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_probs(probs: Any, image_shape: tuple[int, ...]) -> np.ndarray:
    p = _to_numpy(probs)
    if p.ndim != 3:
        raise CRFInputError(f"dense CRF: probs must have shape (K,H,W), got {p.shape}")
    if p.shape[1:] != image_shape[:2]:
        raise CRFInputError(
            f"dense CRF: probs shape {p.shape} (K,H,W) does not match image shape "
            f"{image_shape} (H,W,3)"
        )
    if p.shape[0] < 1 or p.shape[1] < 1 or p.shape[2] < 1:
        raise CRFInputError(f"dense CRF: probs must be non-empty, got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise CRFInputError(f"dense CRF: probs must be floating point, got dtype {p.dtype}")
    p = p.astype(np.float32, copy=False)
    bad = ~np.isfinite(p)
    if bad.any():
        k, y, x = np.argwhere(bad)[0]
        raise CRFInputError(
            f"dense CRF: probs hold {int(bad.sum())} NaN/inf value(s), first at "
            f"class {k}, row {y}, col {x}"
        )
    if (p < 0).any():
        k, y, x = np.argwhere(p < 0)[0]
        raise CRFInputError(
            f"dense CRF: probs must be >= 0, got {float(p[k, y, x])} at class {k}, row {y}, col {x}"
        )
    total = p.sum(axis=0)
    if (total <= 0).any():
        y, x = np.argwhere(total <= 0)[0]
        raise CRFInputError(
            f"dense CRF: probs sum to 0 over classes at {int((total <= 0).sum())} pixel(s), "
            f"first at row {y}, col {x}: cannot normalise"
        )
    if np.abs(total - 1.0).max() > _SUM_TOL:
        p = p / total[None]
    return np.ascontiguousarray(p, dtype=np.float32)


def dense_crf(
    image_rgb_uint8: np.ndarray,
    probs: np.ndarray,
    *,
    iterations: int = 10,
    gauss_sxy: float = 3,
    gauss_compat: float = 3,
    bilateral_sxy: float = 80,
    bilateral_srgb: float = 13,
    bilateral_compat: float = 10,
    backend: Backend = "auto",
) -> np.ndarray:
    """Refine class probabilities ``probs`` (K,H,W) with a dense CRF on ``image_rgb_uint8``
    (H,W,3). Returns the mean-field marginals Q (K,H,W) float32 (each pixel sums to 1).

    ``probs`` may be a numpy array or a torch tensor; pixels whose probabilities do not sum to
    1 are normalised; NaN/inf, negative values or an all-zero pixel raise
    :class:`CRFInputError`. A non-contiguous or read-only image (e.g. ``np.asarray`` of a
    PIL image) is copied to a writable C-ordered array: pydensecrf's memoryviews need both.
    ``iterations=0`` returns the (clipped, renormalised) input distribution.

    Cost and memory grow linearly with K: as AffinityNet/SEAM do, pass the background plus the
    classes present in the image-level label, not every class of the dataset.
    """
    params = CRFParams(
        iterations=iterations,
        gauss_sxy=float(gauss_sxy),
        gauss_compat=float(gauss_compat),
        bilateral_sxy=float(bilateral_sxy),
        bilateral_srgb=float(bilateral_srgb),
        bilateral_compat=float(bilateral_compat),
    )
    name = resolve_backend(backend)
    image = _check_image(image_rgb_uint8)
    p = _check_probs(probs, image.shape)
    if name == "pydensecrf":
        return dense_crf_pydensecrf(image, p, **params.as_kwargs())
    from deal_ros.refine.crf_torch import dense_crf_torch  # torch only when needed

    return dense_crf_torch(image, p, **params.as_kwargs())


def crf_labels(image_rgb_uint8: np.ndarray, probs: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Argmax of :func:`dense_crf` as an (H,W) uint8 label map (K must be <= 256); keyword
    arguments are passed on to :func:`dense_crf`."""
    q = dense_crf(image_rgb_uint8, probs, **kwargs)
    if q.shape[0] > 256:
        raise CRFInputError(f"crf_labels: uint8 labels hold at most 256 classes, got {q.shape[0]}")
    return np.argmax(q, axis=0).astype(np.uint8)
