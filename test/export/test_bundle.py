"""Export: ONNX graph validity, parity torch vs ONNX Runtime, bundle contents, run folders, CLI."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
import yaml

from deal_ros.cli import main as deal
from deal_ros.engine.runfolder import write_classes, write_config
from deal_ros.errors import DealError
from deal_ros.export import DeployModule, check_onnx, check_parity, export_model
from deal_ros.export.parity import batch_from_images
from deal_ros.infer import Runtime, read_bundle
from deal_ros.infer.bundle import InputSpec
from deal_ros.infer.preprocess import Preprocessor
from deal_ros.nets import CAMNet, SegNet, save_weights
from deal_ros.train.config import TrainConfig

from deploy_fixtures import INPUT_SIZE, cam_bundle, scene_images, seg_bundle, torch_threads


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_graph_is_valid_with_dynamic_batch_and_fixed_size():
    tiny = cam_bundle()
    model_path = tiny.path / "model.onnx"
    check_onnx(model_path)
    graph = onnx.load(str(model_path)).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["scores", "cams"]
    assert _dims(graph.input[0]) == ["N", 3, 64, 96]
    assert _dims(graph.output[0]) == ["N", 2] and _dims(graph.output[1]) == ["N", 2, 4, 6]


def test_bundle_yaml_records_parity_and_provenance():
    tiny = cam_bundle()
    spec = yaml.safe_load((tiny.path / "model.yaml").read_text())
    parity = spec["export"]["parity"]
    assert parity["images"] == 4 and 0 <= parity["max_abs"]["cams"] < 1e-3
    assert 0 <= parity["max_abs"]["scores"] < 1e-4
    assert spec["classes"] == ["mug", "box"] and spec["postprocess"]["cam_threshold"] == 0.3
    assert spec["input"]["graph_normalisation"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert (
        spec["training"]["backbone"] == "mobilenet_v2" and spec["outputs"]["cams"]["stride"] == 16
    )
    assert spec["software"].startswith("deal_ros ") and len(spec["model_sha256"]) == 64


def test_parity_is_measured_and_a_wrong_graph_is_caught():
    tiny = cam_bundle()
    images = scene_images(3, INPUT_SIZE, seed=7)
    batch = batch_from_images(images, Preprocessor(InputSpec(*INPUT_SIZE)), INPUT_SIZE)
    with torch_threads():
        report = check_parity(DeployModule(tiny.cam_net), tiny.path / "model.onnx", batch)
        assert report.ok and report.images == 3 and report.worst < 1e-3
        other = copy.deepcopy(tiny.cam_net)
        with torch.no_grad():
            other.classifier.weight.mul_(-1.0)
        with pytest.raises(DealError, match="differ from torch beyond") as exc:
            check_parity(DeployModule(other), tiny.path / "model.onnx", batch)
    assert "\n" not in str(exc.value)


def test_stage2_export_has_seg_logits_and_dynamic_size():
    tiny = seg_bundle()
    graph = onnx.load(str(tiny.path / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["scores", "cams", "seg_logits"]
    assert _dims(graph.input[0]) == ["N", 3, "H", "W"]
    assert _dims(graph.output[2])[:2] == ["N", 4]
    b = read_bundle(tiny.path)
    assert b.has_seg and b.input.dynamic_size and b.postprocess.mask_source == "seg_logits"
    assert b.export["parity"]["max_abs"]["seg_logits"] < 1e-3


def test_export_checks_its_arguments(tmp_path):
    net = cam_bundle().cam_net
    with pytest.raises(DealError, match="3 class names for a CAM net with 2 classes"):
        export_model(net, ["a", "b", "c"], tmp_path / "x")
    with pytest.raises(DealError, match="distinct"):
        export_model(net, ["a", "a"], tmp_path / "x")
    seg = SegNet("mobilenet_v2", num_classes=2, pretrained=None)
    with pytest.raises(DealError, match="the seg net has 2 classes, expected 3"):
        export_model(net, ["a", "b"], tmp_path / "x", seg_net=seg)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(DealError, match=r"holds other files \(notes\.txt\)"):
        export_model(net, ["a", "b"], tmp_path / "busy")


def _write_run(run_dir, net: CAMNet, classes) -> None:
    cfg = TrainConfig(stage="cam", data="scene:n=4,size=64x96", classes=list(classes))
    cfg.input.height, cfg.input.width = INPUT_SIZE
    cfg.labeling.bg_threshold = 0.35
    run_dir.mkdir(parents=True)
    write_config(run_dir, cfg)
    write_classes(run_dir, classes)
    save_weights(net, run_dir / "cam_net.safetensors")


def test_deal_export_cli_on_a_run_folder(tmp_path, capsys):
    tiny = cam_bundle()
    run_dir, out = tmp_path / "runs" / "mug-001", tmp_path / "models" / "mug"
    _write_run(run_dir, tiny.cam_net, tiny.classes)
    (out / "engine" / "old-gpu-trt8.6.1-fp16-000000000000").mkdir(parents=True)  # stale cache
    was = tiny.cam_net.training
    with torch_threads():
        code = deal(["export", f"run={run_dir}", f"out={out}", "engine=false"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "parity torch vs onnxruntime on 4 images: max abs diff scores" in printed
    assert tiny.cam_net.training == was
    b = read_bundle(out)
    assert b.classes == ("mug", "box") and b.postprocess.cam_threshold == pytest.approx(0.35)
    assert b.training["run"] == str(run_dir) and b.training["data"].startswith("scene:")
    assert not (out / "engine" / "old-gpu-trt8.6.1-fp16-000000000000").exists()
    rgb = scene_images(1, (48, 64), seed=9)[0]
    ours = Runtime(out, threads=1).segment(rgb)
    theirs = Runtime(tiny.path, threads=1, cam_threshold=0.35).segment(rgb)
    np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)


def test_deal_export_cli_errors_are_one_line(tmp_path, capsys):
    assert deal(["export", f"run={tmp_path / 'none'}", f"out={tmp_path / 'm'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("deal export: run ") and "no such folder" in err and "\n" not in err
    assert deal(["export", f"run={tmp_path}"]) == 1
    assert "missing out=..." in capsys.readouterr().err
    assert deal(["export", f"run={tmp_path}", "out=x", "fp16=maybe"]) == 1
    assert "setting fp16=maybe: expected true or false" in capsys.readouterr().err
