"""CondInst parts: dynamic-parameter layout, DG-MaskHead against per-instance convolutions,
FCOS target assignment, box masks at stride 4, NMS, the model's outputs, the EMA teacher."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deal_ros.engine.ema import EMATeacher
from deal_ros.instance.condinst import CondInst
from deal_ros.instance.config import BoxModelConfig, InferConfig
from deal_ros.instance.controller import DynamicLayout
from deal_ros.instance.dynamic_mask_head import DynamicMaskHead, grid_locations
from deal_ros.instance.inference import nms
from deal_ros.instance.mask_targets import box_masks, nearness, pooled_depth
from deal_ros.instance.targets import fcos_targets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = BoxModelConfig(
    pretrained=None,
    fpn_channels=16,
    head_convs=1,
    mask_branch_channels=16,
    mask_branch_convs=1,
    sizes_of_interest=[32.0, 64.0],
)


def test_dynamic_layout_parameter_counts():
    assert DynamicLayout(10, 8, depth_guided=False).num_params == 169  # CondInst
    assert DynamicLayout(10, 8, depth_guided=True).num_params == 178  # + M_d: 8 weights, 1 bias
    layout = DynamicLayout(10, 8, True)
    p = torch.arange(2 * 178, dtype=torch.float64).reshape(2, 178)
    parts = layout.split(p)
    assert parts["l1"][0].shape == (2, 8, 10) and parts["depth"][1].shape == (2, 1, 1)
    assert parts["l1"][0][1, 0, 0].item() == 178.0  # weights first, layer by layer
    assert parts["l1"][1][0, 0, 0].item() == 80 + 64 + 8 + 8  # then the biases
    with pytest.raises(ValueError, match="178"):
        layout.split(p[:, :169])


def test_dg_mask_head_matches_per_instance_convolutions():
    g = torch.Generator().manual_seed(0)
    head = DynamicMaskHead(mask_channels=4, channels=5, depth_guided=True, stride=4)
    feats = torch.randn(2, 4, 6, 7, generator=g, dtype=torch.float64)
    n = 3
    params = torch.randn(n, head.num_params, generator=g, dtype=torch.float64) * 0.5
    locs = torch.tensor([[6.0, 10.0], [14.0, 2.0], [22.0, 18.0]], dtype=torch.float64)
    img = torch.tensor([0, 1, 1])
    soi = torch.tensor([32.0, 64.0, 32.0], dtype=torch.float64)
    logits, depth = head(feats, params, locs, img, soi)
    grid = grid_locations(6, 7, 4, dtype=torch.float64)
    parts = head.layout.split(params)

    def conv(x, name, k):  # the instance's 1x1 convolution, as CondInst writes it
        return F.conv2d(x, parts[name][0][k][..., None, None], parts[name][1][k, :, 0])

    for k in range(n):
        rel = ((locs[k][None] - grid) / soi[k]).T.reshape(1, 2, 6, 7)
        x = torch.cat([rel, feats[img[k]][None]], 1)
        f1 = F.relu(conv(F.relu(conv(x, "l1", k)), "l2", k))
        p_depth = torch.sigmoid(conv(f1, "depth", k))
        ref = conv(f1, "mask", k) * p_depth  # P_mask = sigmoid(M_m(F1) * sigmoid(M_d(F1)))
        assert torch.allclose(logits[k], ref[0], atol=1e-12)
        assert torch.allclose(depth[k], p_depth[0], atol=1e-12)
    plain = DynamicMaskHead(4, 5, depth_guided=False)
    out, d = plain(feats, params[:, : plain.num_params], locs, img, soi)
    assert d is None and out.shape == (3, 1, 6, 7)


def test_fcos_targets_assign_centre_region_level_and_smallest_box():
    locs = torch.cat([grid_locations(8, 8, 8), grid_locations(4, 4, 16), grid_locations(2, 2, 32)])
    level = torch.cat([torch.zeros(64), torch.ones(16), torch.full((4,), 2)]).long()
    # box 1: small (20 x 20) -> P3; box 2: large (60 x 44, max distance > 32) -> P4;
    # box 3: inside box 2, small -> P3. Image 2: none. Image 3: two nested boxes
    boxes = torch.tensor(
        [[1, 2.0, 2.0, 22.0, 22.0], [2, 2.0, 18.0, 62.0, 62.0], [3, 24.0, 32.0, 44.0, 52.0]]
    )
    nested = torch.tensor([[1, 0.0, 0.0, 40.0, 40.0], [2, 10.0, 10.0, 30.0, 30.0]])
    t = fcos_targets(locs, level, [boxes, torch.zeros(0, 5), nested], (8, 16, 32), (32.0, 64.0))
    assert t.labels.shape == (3, 84) and (t.labels[1] == -1).all()
    lab = t.labels[0]
    for i in torch.nonzero(lab >= 0).flatten().tolist():
        g = int(t.gt_index[0, i])
        x, y = locs[i].tolist()
        x0, y0, x1, y1 = boxes[g, 1:].tolist()
        assert lab[i] == boxes[g, 0] - 1
        l_, t_, r_, b_ = t.reg[0, i].tolist()
        assert (l_, t_, r_, b_) == pytest.approx((x - x0, y - y0, x1 - x, y1 - y))
        s = (8, 16, 32)[int(level[i])]
        assert abs(x - (x0 + x1) / 2) < 1.5 * s and abs(y - (y0 + y1) / 2) < 1.5 * s
        m = max(l_, t_, r_, b_)
        lo, hi = [(0, 32), (32, 64), (64, math.inf)][int(level[i])]
        assert lo <= m <= hi
    assert (lab[:64] == 0).any() and (lab[:64] == 2).any()  # boxes 1 and 3 on P3
    assert (lab[64:80] == 1).any() and not (lab[:64] == 1).any()  # box 2 only on P4
    # at (20, 20) both nested boxes qualify on P3 (max distances 20 and 10): the smaller wins
    i = int(((locs[:64] - torch.tensor([20.0, 20.0])).abs().sum(1)).argmin())
    assert t.labels[2, i] == 1 and t.gt_index[2, i] == 4  # the batch's 5th box
    assert (t.labels[2] == 0).any()  # the big one keeps the locations the small one lacks
    assert t.gt_boxes.shape == (5, 4) and t.gt_image.tolist() == [0, 0, 0, 2, 2]


def test_box_masks_centre_rule_and_tiny_boxes():
    m = box_masks(torch.tensor([[4.0, 0.0, 12.0, 8.0], [5.0, 5.0, 6.0, 6.0]]), (4, 5))
    # cells have centres 2, 6, 10, 14, 18: x in [4, 12) -> cols 1, 2; y in [0, 8) -> rows 0, 1
    assert m[0, 0].nonzero().tolist() == [[0, 1], [0, 2], [1, 1], [1, 2]]
    assert m[1, 0].sum() == 1 and m[1, 0, 1, 1] == 1  # under one cell: the cell of its centre


def test_pooled_depth_ignores_holes_and_nearness_range():
    d = torch.tensor([[1.0, 0.0, 2.0, 2.0], [3.0, 0.0, 2.0, 2.0]]).view(1, 1, 2, 4)
    v = d > 0
    p = pooled_depth(d, v, stride=2)
    assert p.flatten().tolist() == pytest.approx([2.0, 2.0])  # the holes do not pull to 0
    near, valid = nearness(torch.tensor([[0.0, 1.0, 2.0, 3.0]]).view(1, 1, 1, 4))
    assert not valid[0, 0, 0, 0] and near[0, 0, 0, 1] > near[0, 0, 0, 3]
    assert near.min() >= 0 and near.max() <= 1


def test_nms_is_class_aware_and_greedy():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    classes = torch.tensor([0, 0, 1, 0])
    assert nms(boxes, scores, classes, 0.5).tolist() == [0, 2, 3]
    assert nms(boxes[:0], scores[:0], classes[:0], 0.5).numel() == 0


def _torch_nms(boxes, scores, classes, threshold):
    """The torch NMS this project had before the numpy one (the reference behaviour)."""
    order = torch.argsort(scores, descending=True)
    b, c = boxes[order], classes[order]
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    area = (b[:, 2:] - b[:, :2]).clamp_min(0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp_min(1e-9)
    over = ((iou > threshold) & (c[:, None] == c[None, :])).numpy()
    alive, keep = np.ones(len(order), bool), []
    for i in range(len(order)):
        if alive[i]:
            keep.append(i)
            alive &= ~over[i]
    return order[torch.as_tensor(keep, dtype=torch.long)]


@pytest.mark.parametrize("seed", range(5))
def test_nms_numpy_matches_the_previous_torch_nms(seed):
    from deal_ros.core.boxes import nms as nms_numpy

    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(300, 2, generator=g) * 200
    wh = torch.rand(300, 2, generator=g) * 60 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(300, generator=g)  # distinct: the order is the same in both
    classes = torch.randint(0, 3, (300,), generator=g)
    for thr in (0.3, 0.6):
        ref = _torch_nms(boxes, scores, classes, thr)
        assert 20 < len(ref) < 300  # suppression happens and something survives
        assert nms(boxes, scores, classes, thr).tolist() == ref.tolist()
        got = nms_numpy(boxes.numpy(), scores.numpy(), classes.numpy(), thr)
        assert got.dtype == np.int64 and got.tolist() == ref.tolist()


def test_condinst_outputs_and_predict():
    torch.manual_seed(0)
    model = CondInst(3, TINY).eval()
    x = torch.rand(2, 3, 64, 96)
    dense = model(x)
    n_loc = 8 * 12 + 4 * 6 + 2 * 3
    assert dense.logits.shape == (2, n_loc, 3) and dense.params.shape == (2, n_loc, 178)
    assert dense.mask_feats.shape == (2, 8, 16, 24)
    logits, depth = model.masks(dense, torch.tensor([0, 50, 120]), torch.tensor([0, 1, 1]))
    assert logits.shape == (3, 1, 16, 24) and depth.shape == (3, 1, 16, 24)
    res = model.predict(x, InferConfig(score_threshold=0.0, max_detections=5))
    assert len(res) == 2 and len(res[0]) == 5
    assert res[0].masks.shape == (5, 64, 96) and res[0].classes.min() >= 1
    s8 = CondInst(2, BoxModelConfig(**{**TINY.__dict__, "mask_stride": 8, "depth_guided": False}))
    lo, d = s8.masks(s8(x), torch.tensor([0]), torch.tensor([0]))
    assert lo.shape == (1, 1, 16, 24) and d is None  # stride 8, upsampled 2x to stride 4
    with pytest.raises(ValueError, match="B,3,H,W"):
        model(torch.rand(3, 64, 96))


def test_ema_teacher_update_matches_reference():
    torch.manual_seed(1)
    student = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).double()
    ema = EMATeacher(student, decay=0.9)
    t0 = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    student.train()(torch.randn(8, 3, dtype=torch.float64))  # moves the BN statistics
    ema.update(student)
    s = student.state_dict()
    for k, v in ema.model.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, 0.9 * t0[k] + 0.1 * s[k], atol=1e-14), k
        else:
            assert torch.equal(v, s[k])  # num_batches_tracked copied
    assert not any(p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    with pytest.raises(ValueError, match="decay"):
        EMATeacher(student, 1.0)


def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from deal_ros.export.instance_onnx import CondInstExport, export_instance_onnx

    torch.manual_seed(2)
    model = CondInst(3, TINY).eval()
    path = export_instance_onnx(model, tmp_path / "instance.onnx", (64, 96), topk=12)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 64, 96)
    got = sess.run(None, {"image": x.numpy()})
    with torch.no_grad():
        ref = CondInstExport(model, 12)(x)
        dense = model(x)
        # the exported masks are the model's own, at its top-k (location, class) pairs
        prob = torch.sigmoid(dense.logits[1])
        pair = torch.sqrt(prob * torch.sigmoid(dense.ctr[1])[:, None]).flatten()
        flat = pair.topk(12).indices
        loc, cls = flat // 3, flat % 3
        logits, _ = model.masks(dense, loc, torch.ones(12, dtype=torch.long))
    names = [o.name for o in sess.get_outputs()]
    assert names == ["scores", "classes", "boxes", "masks", "class_probs"]
    assert got[3].shape == (2, 12, 16, 24) and got[1].dtype == np.int64
    for r, g in zip(ref, got):
        np.testing.assert_allclose(r.numpy(), g, atol=1e-5)
    np.testing.assert_array_equal(got[1][1], (cls + 1).numpy())
    np.testing.assert_allclose(got[4][1], prob[loc, cls].numpy(), atol=1e-6)
    np.testing.assert_allclose(torch.sigmoid(logits[:, 0]).numpy(), got[3][1], atol=1e-5)


def test_box_distances_start_positive_so_every_output_has_a_gradient():
    """bias 1 (ours): at initialisation every distance output is past the ReLU's kink, about
    one stride, on any input; FCOS's bias 0 leaves about half of them dead."""
    from deal_ros.instance.fcos_head import FCOSHead

    torch.manual_seed(3)
    head = FCOSHead(16, 2, DynamicLayout(10, 8, depth_guided=False), num_convs=2)
    pyramid = [torch.randn(2, 16, s, s) * 3 for s in (12, 6, 3)]
    with torch.no_grad():
        out = head(pyramid)
    for reg, stride in zip(out["reg"], head.strides):
        assert bool((reg > 0).all())
        assert float((reg / stride - 1).abs().max()) < 0.5
    with torch.no_grad():
        head.bbox_pred.bias.zero_()
        dead = torch.cat([(r == 0).flatten() for r in head(pyramid)["reg"]]).float().mean()
    assert 0.3 < float(dead) < 0.7


def test_controller_grad_scales_what_the_mask_losses_send_into_the_box_tower():
    from deal_ros.instance.fcos_head import FCOSHead

    pyramid = [
        torch.randn(1, 16, s, s, generator=torch.Generator().manual_seed(s)) for s in (8, 4, 2)
    ]
    grads, params = {}, {}
    for scale in (1.0, 0.5, 0.0):
        torch.manual_seed(0)
        head = FCOSHead(16, 2, DynamicLayout(10, 8, depth_guided=False), controller_grad=scale)
        out = head(pyramid)
        params[scale] = torch.cat([p.flatten() for p in out["params"]]).detach()
        sum(p.square().sum() for p in out["params"]).backward()  # a "mask loss"
        grads[scale] = head.box_tower[0].weight.grad
        assert head.controller.conv.weight.grad.abs().sum() > 0  # the controller still learns
    assert torch.equal(params[1.0], params[0.0]) and torch.equal(params[1.0], params[0.5])
    assert torch.allclose(grads[0.5], 0.5 * grads[1.0], rtol=1e-5, atol=1e-8)
    assert grads[0.0] is None or float(grads[0.0].abs().sum()) == 0.0
