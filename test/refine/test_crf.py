"""Dense CRF: both backends on the same synthetic scene, the torch approximations against exact
brute force, and input validation."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from deal_ros.errors import DealError
from deal_ros.refine import CRFInputError, CRFParams, crf_labels, dense_crf, pydensecrf_available
from deal_ros.refine.crf_torch import BilateralGrid, GaussianFilter2D
from deal_ros.refine.synthetic import synthetic_crf_case

needs_pydensecrf = pytest.mark.skipif(
    not pydensecrf_available(),
    reason="pydensecrf (pip install pydensecrf2) not installed: backend comparison skipped",
)


def _miou(pred: np.ndarray, gt: np.ndarray, k: int = 3) -> float:
    return float(np.mean([((pred == c) & (gt == c)).sum() / ((pred == c) | (gt == c)).sum()
                          for c in range(k)]))  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The CRF's many small torch ops gain little from threads and stall badly when the
    cores are shared (seen: 0.3 s -> 18 s under load); one thread keeps this module quick."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def case():
    return synthetic_crf_case(96, 128, seed=0)


@pytest.fixture(scope="module")
def torch_q(case):
    return dense_crf(case.image, case.probs, backend="torch")


def test_torch_backend_improves_iou_over_unrefined_argmax(case, torch_q):
    raw = _miou(case.probs.argmax(0), case.gt)
    refined = _miou(torch_q.argmax(0), case.gt)
    assert raw < 0.5, f"synthetic case too easy: unrefined mIoU {raw:.3f}"
    assert refined > raw + 0.2, f"torch CRF mIoU {refined:.3f} vs unrefined {raw:.3f}"


def test_output_is_a_distribution(case, torch_q):
    assert torch_q.shape == case.probs.shape and torch_q.dtype == np.float32
    assert np.all(torch_q >= 0)
    np.testing.assert_allclose(torch_q.sum(0), 1.0, atol=1e-5)


@needs_pydensecrf
def test_backends_agree_and_both_improve(case, torch_q):
    ref = dense_crf(case.image, case.probs, backend="pydensecrf")
    agree = float((ref.argmax(0) == torch_q.argmax(0)).mean())
    raw = _miou(case.probs.argmax(0), case.gt)
    m_ref, m_torch = _miou(ref.argmax(0), case.gt), _miou(torch_q.argmax(0), case.gt)
    print(f"argmax agreement torch vs pydensecrf: {100 * agree:.2f}% of pixels; mIoU raw "
          f"{raw:.3f}, pydensecrf {m_ref:.3f}, torch {m_torch:.3f}")  # fmt: skip
    assert m_ref > raw + 0.2
    assert agree >= 0.97, f"backends agree on only {100 * agree:.2f}% of pixels"
    assert abs(m_ref - m_torch) < 0.05


@needs_pydensecrf
def test_backends_share_the_unary_convention(case):
    """With 0 iterations both return softmax(-unary): the clipped, renormalised input."""
    a = dense_crf(case.image, case.probs, iterations=0, backend="pydensecrf")
    b = dense_crf(case.image, case.probs, iterations=0, backend="torch")
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(b, case.probs, atol=1e-4)


@needs_pydensecrf
def test_gaussian_kernel_alone_matches_pydensecrf(case):
    kw = {"iterations": 3, "bilateral_compat": 0}
    a = dense_crf(case.image, case.probs, backend="pydensecrf", **kw)
    b = dense_crf(case.image, case.probs, backend="torch", **kw)
    assert np.abs(a - b).mean() < 5e-3
    assert (a.argmax(0) == b.argmax(0)).mean() > 0.99


def test_bilateral_grid_approximates_the_gaussian_kernel():
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(1500, 5, generator=gen) * torch.tensor([4.0, 3.0, 10.0, 10.0, 10.0])
    v = torch.rand(1500, 2, generator=gen)
    exact = torch.exp(-(torch.cdist(f.double(), f.double()) ** 2) / 2) @ v.double()
    approx = BilateralGrid(f).filter(v).double()
    rel = float((approx - exact).norm() / exact.norm())
    assert rel < 0.15, f"bilateral grid relative error {rel:.3f}"


def test_gaussian_filter_is_exact_within_its_truncation():
    x = torch.rand(20, 30, 2, generator=torch.Generator().manual_seed(1))
    sigma = 2.0
    yy, xx = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    dy = (yy.reshape(-1, 1) - yy.reshape(1, -1)).abs()
    dx = (xx.reshape(-1, 1) - xx.reshape(1, -1)).abs()
    k = torch.exp(-(dy**2 + dx**2) / (2 * sigma**2)) * (dy <= 6) * (dx <= 6)
    exact = (k @ x.reshape(-1, 2)).reshape(20, 30, 2)
    torch.testing.assert_close(GaussianFilter2D(sigma)(x), exact, atol=1e-4, rtol=1e-4)


def test_crf_labels_is_the_argmax(case, torch_q):
    labels = crf_labels(case.image, case.probs, backend="torch")
    assert labels.dtype == np.uint8 and labels.shape == case.gt.shape
    np.testing.assert_array_equal(labels, torch_q.argmax(0))


def test_unnormalised_probs_and_noncontiguous_image_and_tensor_input(case, torch_q):
    kw = {"iterations": 2, "backend": "torch"}
    ref = dense_crf(case.image, case.probs, **kw)
    np.testing.assert_allclose(dense_crf(case.image, 3.0 * case.probs, **kw), ref, atol=1e-5)
    np.testing.assert_allclose(
        dense_crf(case.image, torch.from_numpy(case.probs), **kw), ref, atol=1e-6
    )
    flipped = case.image[:, ::-1]  # a negative-stride view
    assert not flipped.flags.c_contiguous
    out = dense_crf(flipped, case.probs[:, :, ::-1], **kw)
    np.testing.assert_allclose(out, dense_crf(flipped.copy(), case.probs[:, :, ::-1].copy(), **kw))


def test_read_only_inputs_are_accepted_without_warnings(case):
    image, probs = case.image.copy(), case.probs.copy()
    image.setflags(write=False)
    probs.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = dense_crf(image, probs, iterations=1, backend="torch")
    assert q.shape == probs.shape


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_shape_mismatch_names_both_shapes(case, backend):
    with pytest.raises(CRFInputError, match=r"\(3, 96, 127\).*\(96, 128, 3\)"):
        dense_crf(case.image, case.probs[:, :, :127], backend=backend)


def test_bad_inputs_raise_one_clear_error(case):
    p = case.probs.copy()
    p[1, 5, 7] = np.nan
    with pytest.raises(CRFInputError, match=r"NaN/inf.*class 1, row 5, col 7"):
        dense_crf(case.image, p)
    with pytest.raises(CRFInputError, match=">= 0"):
        dense_crf(case.image, case.probs - 0.5)
    zero = case.probs.copy()
    zero[:, 2, 3] = 0
    with pytest.raises(CRFInputError, match=r"sum to 0.*row 2, col 3"):
        dense_crf(case.image, zero)
    with pytest.raises(CRFInputError, match="uint8"):
        dense_crf(case.image.astype(np.float32), case.probs)
    with pytest.raises(CRFInputError, match=r"\(H,W,3\)"):
        dense_crf(case.image[..., :2], case.probs)
    with pytest.raises(CRFInputError, match=r"\(K,H,W\)"):
        dense_crf(case.image, case.probs[0])
    with pytest.raises(CRFInputError, match="backend"):
        dense_crf(case.image, case.probs, backend="gpu")  # type: ignore[arg-type]
    with pytest.raises(CRFInputError, match="bilateral_srgb"):
        dense_crf(case.image, case.probs, bilateral_srgb=0)
    with pytest.raises(CRFInputError, match="iterations"):
        CRFParams(iterations=-1)
    assert issubclass(CRFInputError, DealError) and issubclass(CRFInputError, ValueError)


def test_params_dataclass_round_trips(case):
    params = CRFParams.irn()
    assert (params.bilateral_sxy, params.bilateral_srgb) == (50.0, 5.0)
    q = dense_crf(
        case.image, case.probs, backend="torch", **{**params.as_kwargs(), "iterations": 1}
    )
    assert q.shape == case.probs.shape


def test_importing_refine_does_not_import_torch():
    code = "import sys, deal_ros.refine; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
