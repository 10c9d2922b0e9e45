"""Segmentation metrics against confusion matrices and IoUs computed by hand."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from deal_ros.errors import DealError
from deal_ros.train.metrics import (
    MetricsInputError,
    SegMetrics,
    cam_threshold_sweep,
    confusion_matrix,
    iou_per_class,
    miou,
    miou_multiclass_only,
    pixel_accuracy,
)

# (gt, pred) pixel pairs: (0,0) (1,1) (2,1) (2,2) (ignored) (0,0)
PRED = np.array([[0, 1, 1], [2, 2, 0]])
GT = np.array([[0, 1, 2], [2, 255, 0]])
CONF = np.array([[2, 0, 0], [0, 1, 0], [0, 1, 1]])


def test_confusion_matrix_by_hand():
    conf = confusion_matrix(PRED, GT, 3)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, CONF)  # rows = gt, cols = pred


def test_iou_miou_accuracy_by_hand():
    # IoU0 = 2/2, IoU1 = 1/(2+1-1), IoU2 = 1/(1+2-1)
    np.testing.assert_allclose(iou_per_class(CONF), [1.0, 0.5, 0.5])
    assert miou(CONF) == pytest.approx(2 / 3)
    assert pixel_accuracy(CONF) == pytest.approx(4 / 5)


def test_absent_class_is_nan_and_skipped_but_a_false_positive_class_counts():
    conf = confusion_matrix(PRED, GT, 4)
    iou = iou_per_class(conf)
    assert np.isnan(iou[3])
    assert miou(conf) == pytest.approx(2 / 3)
    pred = PRED.copy()
    pred[0, 0] = 3  # class 3 only predicted: IoU3 = 0, IoU0 = 1/2
    iou = iou_per_class(confusion_matrix(pred, GT, 4))
    np.testing.assert_allclose(iou, [0.5, 0.5, 0.5, 0.0])
    assert np.isnan(miou(np.zeros((3, 3), np.int64)))
    assert np.isnan(pixel_accuracy(np.zeros((3, 3), np.int64)))


def test_ignore_index_is_configurable_and_pred_at_ignored_pixels_is_not_counted():
    gt = np.where(GT == 255, -1, GT)
    np.testing.assert_array_equal(confusion_matrix(PRED, gt, 3, ignore_index=-1), CONF)
    pred = PRED.copy()
    pred[1, 1] = 0  # under the ignored gt pixel
    np.testing.assert_array_equal(confusion_matrix(pred, GT, 3), CONF)


def test_torch_tensors_give_the_same_matrix():
    conf = confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(GT).to(torch.uint8), 3)
    assert isinstance(conf, np.ndarray) and conf.dtype == np.int64
    np.testing.assert_array_equal(conf, CONF)
    np.testing.assert_array_equal(confusion_matrix(torch.from_numpy(PRED), GT, 3), CONF)


def test_bad_inputs_raise_clear_errors():
    pred = PRED.copy()
    pred[1, 0] = 5
    with pytest.raises(
        MetricsInputError,
        match=r"pred holds 1 value\(s\) outside \[0, 3\), first 5 at index \(1, 0\)",
    ):
        confusion_matrix(pred, GT, 3)
    with pytest.raises(MetricsInputError, match=r"pred holds .*outside \[0, 2\)"):
        confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(GT), 2)
    with pytest.raises(MetricsInputError, match=r"gt holds 1 value\(s\).*first 7"):
        confusion_matrix(PRED, np.where(GT == 1, 7, GT), 3)
    with pytest.raises(MetricsInputError, match=r"\(2, 3\).*\(3, 2\)"):
        confusion_matrix(PRED, GT.T, 3)
    with pytest.raises(MetricsInputError, match=r"integer class ids.*float"):
        confusion_matrix(PRED.astype(np.float32), GT, 3)
    with pytest.raises(MetricsInputError, match="square"):
        miou(np.zeros((2, 3)))
    assert issubclass(MetricsInputError, DealError) and issubclass(MetricsInputError, ValueError)


# multi-class-only: A single-class (all background, perfect), B two classes, C single-class
# once the ignored pixel is left out (so excluded although its prediction is wrong)
IMG_A = (np.zeros((3, 3), np.int64), np.zeros((3, 3), np.int64))
IMG_B = (np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]]))  # (pred, gt)
IMG_C = (np.array([[0, 0], [0, 1]]), np.array([[1, 255], [1, 1]]))


def test_multiclass_only_filter_by_hand():
    preds, gts = zip(IMG_A, IMG_B, IMG_C, strict=True)
    # only B counts: conf [[1,0],[1,2]] -> IoU0 = 1/2, IoU1 = 2/3
    assert miou_multiclass_only(preds, gts, 2) == pytest.approx((1 / 2 + 2 / 3) / 2)
    m = SegMetrics(2, class_names=["sand", "rock"])
    for p, g in zip(preds, gts, strict=True):
        m.update(p, g)
    s = m.summary()
    # all images: conf [[10,0],[3,3]] -> IoU0 = 10/13, IoU1 = 3/6: inflated by image A
    np.testing.assert_array_equal(m.conf, [[10, 0], [3, 3]])
    assert s["miou"] == pytest.approx((10 / 13 + 0.5) / 2)
    assert s["iou_per_class"] == pytest.approx([10 / 13, 0.5])
    assert s["iou_by_class"] == pytest.approx({"sand": 10 / 13, "rock": 0.5})
    assert s["pixel_accuracy"] == pytest.approx(13 / 16)
    assert s["miou_multiclass_only"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert (s["n_images"], s["n_multiclass_images"]) == (3, 1)
    assert np.isnan(miou_multiclass_only([IMG_A[0]], [IMG_A[1]], 2))


def test_segmetrics_batches_count_as_images_and_reset():
    m = SegMetrics(2)
    pred = torch.from_numpy(np.stack([IMG_B[0], IMG_C[0]]))
    m.update(pred, torch.from_numpy(np.stack([IMG_B[1], IMG_C[1]])))
    assert (m.n_images, m.n_multiclass_images) == (2, 1)
    np.testing.assert_array_equal(m.conf, [[1, 0], [3, 3]])
    m.reset()
    assert m.n_images == 0 and m.conf.sum() == 0
    with pytest.raises(MetricsInputError, match="class_names has 1 names"):
        SegMetrics(2, class_names=["sand"])


# threshold sweep: gt ids 0 = background, 1 and 2 = classes 0 and 1 of the CAMs
SWEEP_GT = np.array([[0, 0, 1, 1, 2, 2]])
SWEEP_CAMS = np.array(
    [
        [[0.10, 0.32, 0.38, 0.60, 0.00, 0.00]],
        [[0.00, 0.10, 0.00, 0.00, 0.70, 0.80]],
    ]
)


def test_threshold_sweep_finds_the_only_perfect_threshold():
    # background pixel scores reach 0.32, foreground drop to 0.38: only t = 0.35 is perfect
    out = cam_threshold_sweep([SWEEP_CAMS], [np.array([1, 1])], [SWEEP_GT])
    assert out["best_threshold"] == pytest.approx(0.35)
    assert out["best_miou"] == pytest.approx(1.0)
    mious = dict(zip(np.round(out["thresholds"], 2), out["mious"], strict=True))
    assert len(mious) == 19
    # t=0.05: pred [1,1,1,1,2,2] -> IoU 0, 2/4, 1
    assert mious[0.05] == pytest.approx(0.5)
    # t=0.65: pred [0,0,0,0,2,2] -> IoU 2/4, 0, 1
    assert mious[0.65] == pytest.approx(0.5)
    # t=0.95: all background -> IoU 2/6, 0, 0
    assert mious[0.95] == pytest.approx(1 / 9)


def test_threshold_sweep_tie_goes_to_background_and_absent_classes_are_excluded():
    out = cam_threshold_sweep([SWEEP_CAMS], [np.array([1, 1])], [SWEEP_GT], thresholds=[0.38])
    # at t = 0.38 the pixel scoring exactly 0.38 becomes background: pred [0,0,0,1,2,2],
    # conf rows [2,0,0], [1,1,0], [0,0,2] -> IoU0 = 2/3, IoU1 = 1/2, IoU2 = 1
    assert out["best_miou"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # class 1 scores 0.9 everywhere but is not in the image label: all background
    cams = np.array([[[0.0, 0.0]], [[0.9, 0.9]]])
    out = cam_threshold_sweep([cams], [np.array([0, 0])], [np.array([[0, 0]])])
    np.testing.assert_allclose(out["mious"], 1.0)


def _sweep_reference(cams_list, labels, gts, thresholds, c):
    """Plain per-threshold loop: argmax over [t, cams of present classes]."""
    out = []
    for t in thresholds:
        conf = np.zeros((c, c), np.int64)
        for cam, label, gt in zip(cams_list, labels, gts, strict=True):
            scores = np.where(np.asarray(label, bool)[:, None, None], cam, -np.inf)
            pred = np.argmax(np.concatenate([np.full((1, *gt.shape), t), scores]), axis=0)
            conf += confusion_matrix(pred, gt, c)
        out.append(miou(conf))
    return np.array(out)


def test_threshold_sweep_matches_a_per_threshold_loop_on_random_data():
    rng = np.random.default_rng(3)
    k, n = 4, 6
    cams = [rng.random((k, 12, 10)) ** 2 for _ in range(n)]
    labels = [rng.random(k) < 0.5 for _ in range(n)]
    gts = [rng.integers(0, k + 1, (12, 10)) for _ in range(n)]
    gts[0][0, :3] = 255
    thr = np.round(np.arange(0.05, 0.96, 0.05), 2)
    out = cam_threshold_sweep(cams, labels, gts, thresholds=thr)
    np.testing.assert_allclose(out["mious"], _sweep_reference(cams, labels, gts, thr, k + 1))
    tensor_out = cam_threshold_sweep([torch.from_numpy(c) for c in cams], labels, gts)
    np.testing.assert_allclose(tensor_out["mious"], out["mious"])


def test_threshold_sweep_bad_inputs():
    label = [np.array([1, 1])]
    with pytest.raises(MetricsInputError, match=r"image 0: cams must lie in \[0, 1\]"):
        cam_threshold_sweep([SWEEP_CAMS * 2], label, [SWEEP_GT])
    with pytest.raises(MetricsInputError, match="image 0: cams hold NaN"):
        cam_threshold_sweep([SWEEP_CAMS * np.nan], label, [SWEEP_GT])
    with pytest.raises(MetricsInputError, match=r"image 0: cams \(2, 1, 6\).*gt \(1, 5\)"):
        cam_threshold_sweep([SWEEP_CAMS], label, [SWEEP_GT[:, :5]])
    with pytest.raises(MetricsInputError, match=r"outside \[0, 3\)"):
        cam_threshold_sweep([SWEEP_CAMS], label, [SWEEP_GT + 1])
    with pytest.raises(MetricsInputError, match="as many cams"):
        cam_threshold_sweep([SWEEP_CAMS], [], [SWEEP_GT])


def test_metrics_module_does_not_import_torch():
    code = "import sys, deal_ros.train.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_contract_names_are_the_eval_room_s_and_import_without_a_warning():
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "from deal_ros.train.metrics import confusion_matrix, miou, miou_multiclass_only\n"
        "import deal_ros.eval.metrics as m\n"
        "assert (confusion_matrix, miou, miou_multiclass_only) == "
        "(m.confusion_matrix, m.miou, m.miou_multiclass_only)\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
