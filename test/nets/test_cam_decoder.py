"""Finer CAMs: the cell-centre convention (8j vs 8j + 3.5), the top-down CAM decoder, and the
decoder CAM net through ONNX export (real onnxruntime parity)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deal_ros.nets.cam_decoder import resample_cells, sample_lines, to_cell_centres
from deal_ros.nets.cam_net import CAMNet


def _strided_box_net(stride: int) -> torch.nn.Module:
    """log2(stride) 3x3 stride-2 box filters, padding 1: the geometry of a CNN backbone."""
    layers = []
    for _ in range(int(np.log2(stride))):
        conv = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
        torch.nn.init.constant_(conv.weight, 1.0 / 9)
        layers.append(conv)
    return torch.nn.Sequential(*layers)


def _centroid(x: torch.Tensor) -> tuple[float, float]:
    h, w = x.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h * 1.0), torch.arange(w * 1.0), indexing="ij")
    return float((x * ys).sum() / x.sum()), float((x * xs).sum() / x.sum())


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_cell_centres_put_the_response_of_a_dot_back_on_the_dot(stride):
    """A dot's response, upsampled as every consumer does (bilinear, align_corners=False),
    lands (stride-1)/2 px down-right of the dot on the raw CNN grid and on the dot after
    ``to_cell_centres``."""
    net = _strided_box_net(stride)
    size = 16 * stride
    offsets = []
    # on a cell centre and half way between two (where the sampled response is symmetric)
    for y0, x0 in ((7 * stride, 9 * stride), (8 * stride + stride // 2, 6 * stride)):
        img = torch.zeros(1, 1, size, size)
        img[..., y0, x0] = 1.0
        with torch.no_grad():
            grid = net(img)
        for aligned in (False, True):
            g = to_cell_centres(grid, stride) if aligned else grid
            up = F.interpolate(g, size=(size, size), mode="bilinear", align_corners=False)
            cy, cx = _centroid(up[0, 0])
            offsets.append((aligned, cy - y0, cx - x0))
    half = (stride - 1) / 2
    for aligned, dy, dx in offsets:
        expect = 0.0 if aligned else half
        assert dy == pytest.approx(expect, abs=0.05) and dx == pytest.approx(expect, abs=0.05)


def test_resample_cells_maps_cell_centres_exactly():
    """A ramp equal to the pixel coordinate of each cell centre stays that ramp."""
    coarse = (torch.arange(6.0) * 16).view(1, 1, 1, 6).repeat(1, 1, 5, 1)
    fine = resample_cells(coarse, (10, 12), 16, 8)
    assert torch.allclose(fine[0, 0, 0, :11], torch.arange(11.0) * 8)
    assert fine[0, 0, 0, 11] == 80.0  # beyond the last coarse cell: clamped
    x = torch.rand(2, 3, 4, 5)
    assert torch.equal(sample_lines(x, torch.arange(5.0), 3), x)


@pytest.mark.parametrize("decoder,stride", [("none", 16), ("s8", 8), ("s4", 4)])
def test_decoder_cam_net_shapes_stride_and_gap(decoder, stride):
    net = CAMNet("mobilenet_v2", num_classes=3, output_stride=16, decoder=decoder, align=True)
    out = net(torch.rand(2, 3, 64, 96))
    assert net.cam_stride == stride
    assert out["cam_logits"].shape == (2, 3, 64 // stride, 96 // stride)
    assert torch.allclose(out["logits"], out["cam_logits"].mean((2, 3)))
    head = {id(p) for p in net.head_parameters()}
    assert {id(p) for p in net.classifier.parameters()} <= head
    if decoder != "none":
        assert {id(p) for p in net.decoder.parameters()} <= head
    with pytest.raises(ValueError, match="decoder"):
        CAMNet("mobilenet_v2", decoder="s2")


def test_decoder_cam_net_exports_to_onnx_with_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    from deal_ros.export.bundle import export_model

    torch.manual_seed(0)
    net = CAMNet("mobilenet_v2", num_classes=2, output_stride=16, decoder="s4", align=True)
    result = export_model(net.eval(), ["mug", "box"], tmp_path / "bundle", input_size=(64, 96),
                          tensorrt=False)  # fmt: skip
    assert result.bundle.cam_stride == 4 and result.parity.ok
