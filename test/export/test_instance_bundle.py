"""Instance bundles end to end: ``deal export`` of a trained box run, ONNX Runtime instances
equal to torch ``CondInst.predict`` (letterbox included), ``deal infer`` overlays / results,
semantic bundles unchanged, wrong bundles refused in one line, no torch at inference."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from deal_ros.cli import main as deal
from deal_ros.errors import DealError
from deal_ros.infer import BundleError, Runtime, read_bundle
from deal_ros.infer.bundle import INSTANCE_OUTPUTS
from deal_ros.infer.preprocess import Preprocessor

from deploy_fixtures import cam_bundle, copy_bundle, scene_images
from instance_fixtures import INPUT_SIZE, box_bundle

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, DealError)
    return text


def test_deal_export_writes_an_instance_bundle():
    bb = box_bundle()
    assert "parity torch vs onnxruntime on 4 images: max abs diff scores" in bb.printed
    assert "class_probs" in bb.printed and "instance segmentation" in bb.printed
    b = read_bundle(bb.path)
    spec = yaml.safe_load((bb.path / "model.yaml").read_text())
    assert spec["format"] == 2 and spec["task"] == "instance" and b.is_instance
    assert b.classes == ("mug", "box", "ball") and tuple(b.outputs) == INSTANCE_OUTPUTS
    assert b.instance.topk == 126 * 3 and b.instance.mask_stride == 4  # every pair, stride 4
    run_cfg = yaml.safe_load((bb.run / "config.yaml").read_text())["infer"]
    for key in ("score_threshold", "nms_threshold", "max_detections", "mask_threshold"):
        assert getattr(b.instance, key) == pytest.approx(run_cfg[key]), key
    assert (b.input.height, b.input.width, b.input.fit) == (64, 96, "pad")
    assert b.input.pad_value == (124, 116, 104)  # training's fill: the ImageNet mean
    assert b.training["stage"] == "box" and b.training["run"] == str(bb.run)
    assert max(b.export["parity"]["max_abs"].values()) < 1e-3
    rt = Runtime(bb.path, threads=1)
    assert rt.task == "instance" and "instance segmentation" in rt.describe()


def test_semantic_bundles_still_read_and_run_as_before():
    b = read_bundle(cam_bundle().path)
    spec = yaml.safe_load((cam_bundle().path / "model.yaml").read_text())
    assert spec["format"] == 1 and "task" not in spec  # written as before
    assert b.task == "semantic" and not b.is_instance and b.instance is None
    assert b.input.fit == "resize"
    rt = Runtime(cam_bundle().path, threads=1, task="semantic")
    res = rt.segment(scene_images(1, (48, 64), seed=3)[0])
    assert res.mask.shape == (48, 64) and res.overlay.shape == (48, 64, 3)


def _torch_instances(model, rgb, infer, fit="pad"):
    """CondInst.predict on the training fit of ``rgb``, mapped back like ``deal eval`` does."""
    from deal_ros.data.sample import Sample
    from deal_ros.data.torch_dataset import fit_sample
    from deal_ros.instance.evaluate import to_original

    fitted = fit_sample(Sample(rgb=rgb, labels=np.zeros(0, np.float32)), INPUT_SIZE, fit).rgb
    x = torch.from_numpy(np.ascontiguousarray(fitted)).permute(2, 0, 1)[None].float() / 255
    inst = model.predict(x, infer)[0]
    masks, boxes = to_original(
        inst, INPUT_SIZE, rgb.shape[:2], fit, infer.mask_threshold, infer.box_margin
    )
    return fitted, inst, masks, boxes


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


@pytest.mark.parametrize("threshold", [0.05, 0.2])
def test_onnx_runtime_instances_equal_condinst_predict(threshold):
    from deal_ros.instance.cli import load_box_run
    from deal_ros.instance.config import InferConfig

    bb = box_bundle()
    cfg, _, model = load_box_run(bb.run)
    rt = Runtime(bb.path, threads=1, score_threshold=threshold)
    assert rt.instance.box_margin == cfg.infer.box_margin  # the run's crop rides in the bundle
    infer = InferConfig(
        score_threshold=threshold, pre_nms_topk=1000, box_margin=cfg.infer.box_margin
    )
    frames = scene_images(2, INPUT_SIZE, seed=31) + scene_images(2, (90, 120), seed=32)
    total = 0
    for rgb in frames:
        fitted, inst, masks, boxes = _torch_instances(model, rgb, infer)
        # the runtime's letterbox is training's: the same network input, bit for bit
        ours = Preprocessor(rt.bundle.input)(rgb, INPUT_SIZE)[0].transpose(1, 2, 0)
        np.testing.assert_allclose(ours * 255, fitted, atol=1e-3)
        got = rt.detect(rgb)
        assert len(got) == len(inst), (len(got), len(inst))
        np.testing.assert_array_equal(got.classes, inst.classes.numpy())
        np.testing.assert_allclose(got.scores, inst.scores.numpy(), atol=1e-5)
        np.testing.assert_allclose(got.boxes, boxes, atol=1e-3)
        assert got.masks.shape == masks.shape and got.masks.dtype == bool
        ious = [_mask_iou(a, b) for a, b in zip(got.masks, masks)]
        assert min(ious, default=1.0) > 0.99, ious
        assert got.overlay.shape == rgb.shape
        total += len(got)
    assert total > 0  # something is detected (the comparison is not vacuous)
    if threshold == 0.05:
        assert total > 4 * 5  # NMS has work to do


def _scene_frames(spec: str) -> list[np.ndarray]:
    from deal_ros.data.registry import build_dataset

    ds = build_dataset(spec)
    return [ds[i].rgb for i in range(len(ds))]


def test_deal_infer_writes_instance_overlays_masks_and_results(tmp_path, capsys):
    bb = box_bundle()
    spec = "scene:n=3,seed=4,size=64x96"
    out = tmp_path / "out"
    code = deal(["infer", f"model={bb.path}", f"input={spec}", f"out={out}", "threads=1",
                 "score_threshold=0.2"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "instance segmentation" in printed and "3 frames ->" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"00000{i}_{k}.png" for i in range(3) for k in ("mask", "overlay")] + [
        "results.jsonl"
    ]
    records = [json.loads(r) for r in (out / "results.jsonl").read_text().splitlines()]
    rt = Runtime(bb.path, threads=1, score_threshold=0.2)
    seen = 0
    for i, rgb in enumerate(_scene_frames(spec)):
        ref = rt.detect(rgb)
        rec = records[i]
        assert rec["name"] == f"{i:06d}" and len(rec["instances"]) == len(ref)
        for item, c, s, b in zip(rec["instances"], ref.classes, ref.scores, ref.boxes):
            assert item["class_id"] == int(c) and item["class"] == rt.bundle.class_names[c]
            assert item["score"] == pytest.approx(float(s), abs=1e-5)
            assert item["box"] == pytest.approx([float(v) for v in b], abs=0.01)
        ids = np.asarray(Image.open(out / f"{i:06d}_mask.png"))
        assert ids.shape == rgb.shape[:2] and ids.max() <= len(ref)
        for k, m in enumerate(ref.masks):  # the best instance owns its pixels
            if k == 0 and m.any():
                assert (ids[m] == 1).all()
        overlay = np.asarray(Image.open(out / f"{i:06d}_overlay.png"))
        np.testing.assert_array_equal(overlay, ref.overlay)
        if len(ref) and ref.masks.any():
            inside = ref.masks.any(0)
            assert (overlay[inside] != rgb[inside]).any(axis=1).mean() > 0.5  # tinted
        seen += len(ref)
    assert seen > 0
    # save=mask only; CAM / cloud are semantic outputs: one clear line
    assert deal(["infer", f"model={bb.path}", f"input={spec}", f"out={tmp_path / 'm'}",
                 "save=mask", "threads=1"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "m").iterdir())[-1] == "results.jsonl"
    assert all(p.name.endswith(("_mask.png", ".jsonl")) for p in (tmp_path / "m").iterdir())
    capsys.readouterr()
    assert deal(["infer", f"model={bb.path}", f"input={spec}", f"out={tmp_path / 'c'}",
                 "save=overlay,cam"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("deal infer: save=cam") and "instance bundle" in err
    assert str(bb.path) in err and "\n" not in err


def test_deal_infer_instance_clouds_give_one_object_per_instance(tmp_path, capsys):
    from deal_ros.core.ply import read_ply

    bb = box_bundle()
    spec = "scene:n=2,seed=4,size=64x96"
    out = tmp_path / "cloud"
    code = deal(["infer", f"model={bb.path}", f"input={spec}", f"out={out}", "threads=1",
                 "score_threshold=0.2", "save=mask,cloud"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    records = [json.loads(r) for r in (out / "results.jsonl").read_text().splitlines()]
    seen = 0
    for i, rec in enumerate(records):
        ply = read_ply(out / f"{i:06d}_cloud.ply")
        classes = {item["class_id"] for item in rec["instances"]}
        assert set(np.unique(ply.cloud.class_ids)) <= classes  # points carry class ids
        for obj in rec["objects"]:
            inst = rec["instances"][obj["instance"] - 1]  # its instance, by 1-based index
            assert obj["class_id"] == inst["class_id"] and obj["class"] == inst["class"]
            assert obj["points"] > 0 and len(obj["box_size"]) == 3
        instances = [o["instance"] for o in rec["objects"]]
        assert len(instances) == len(set(instances))  # one object per instance at most
        seen += len(rec["objects"])
    assert seen > 1


def test_wrong_bundles_give_one_clear_line(tmp_path, capsys):
    bb = box_bundle()
    with pytest.raises(BundleError) as exc:
        Runtime(bb.path, threads=1, task="semantic")
    text = _one_line(exc)
    assert str(bb.path) in text and "instance bundle" in text and "semantic" in text
    with pytest.raises(BundleError, match="segment\\(\\) needs a semantic bundle") as exc:
        Runtime(bb.path, threads=1).segment(np.zeros((8, 8, 3), np.uint8))
    _one_line(exc)
    with pytest.raises(BundleError, match="detect\\(\\) needs an instance bundle"):
        Runtime(cam_bundle().path, threads=1).detect(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(BundleError, match="a semantic bundle \\(task: semantic\\), an instance"):
        Runtime(cam_bundle().path, threads=1, task="instance")
    cases = [
        ({"task": "panoptic"}, "'task' must be one of semantic, instance"),
        ({"instance": None}, "'instance' must be a mapping"),
        ({"outputs": {"scores": {}, "cams": {}}}, "'outputs' has no 'classes', 'boxes'"),
        ({"postprocess": {"nms_threshold": 1.5}}, "'nms_threshold' must be a number in"),
        ({"input": {"height": 64, "width": 96, "fit": "crop"}}, "'input.fit' must be one of"),
    ]
    for i, (change, match) in enumerate(cases):
        path = copy_bundle(bb.path, tmp_path / f"b{i}")
        spec = yaml.safe_load((path / "model.yaml").read_text())
        spec.update(change)
        (path / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        with pytest.raises(BundleError, match=match) as exc:
            read_bundle(path)
        assert str(path) in _one_line(exc)
    # a semantic bundle cannot claim a letterbox; a corrupt model.yaml fails `deal infer`
    sem = copy_bundle(cam_bundle().path, tmp_path / "sem")
    spec = yaml.safe_load((sem / "model.yaml").read_text())
    spec["input"]["fit"] = "pad"
    (sem / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(BundleError, match="only read for instance bundles"):
        read_bundle(sem)
    broken = copy_bundle(bb.path, tmp_path / "broken")
    (broken / "model.yaml").write_text("format: 2\ntask: instance\nclasses: [mug\n")
    capsys.readouterr()
    assert deal(["infer", f"model={broken}", "input=scene:n=1", f"out={tmp_path / 'o'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert "not valid YAML at line" in err and str(broken) in err and "\n" not in err


def test_deal_export_box_run_errors_are_one_line(tmp_path, capsys):
    bb = box_bundle()
    out = tmp_path / "m"
    assert deal(["export", f"run={bb.run}", f"out={out}", "cam_threshold=0.3"]) == 1
    err = capsys.readouterr().err.strip()
    assert "box (instance) run: cam_threshold" in err and "\n" not in err
    assert deal(["export", f"run={cam_bundle().path}", f"out={out}", "topk=5"]) == 1
    err = capsys.readouterr().err.strip()
    assert "topk applies to box (instance) runs only" in err and "\n" not in err


def test_instance_inference_never_imports_torch(tmp_path):
    bb = box_bundle()
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(scene_images(1, (90, 120), seed=8)[0]).save(folder / "f.png")
    code = (
        "import sys\n"
        "from deal_ros.cli import main\n"
        f"rc = main(['infer', 'model={bb.path}', 'input={folder}', 'out={tmp_path / 'o'}', "
        "'threads=1', 'score_threshold=0.1'])\n"
        "sys.exit(rc or (3 if 'torch' in sys.modules else 0))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "o" / "f_overlay.png").is_file()


def test_parity_alignment_leaves_out_only_rows_tied_at_the_top_k_cut():
    from deal_ros.export.instance_bundle import align_candidates

    boxes = np.array([[[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 4, 4], [30, 30, 40, 40]]], float)
    ref = [np.array([[0.9, 0.5, 0.1, 0.1]]), np.array([[1, 1, 1, 2]]), boxes]
    # ONNX Runtime: rows 0 and 1 swapped (same scores within rounding), and at the cut another
    # candidate tied with the last one (class 1 instead of 2): it is not in torch's top k
    got_boxes = boxes[:, [1, 0, 2, 3]].copy()
    got_boxes[0, 3] = [50, 50, 60, 60]
    got = [np.array([[0.5, 0.9, 0.1, 0.1 + 1e-7]]), np.array([[1, 1, 1, 1]]), got_boxes]
    aligned, compare = align_candidates(1e-3)(ref, got)
    assert compare.tolist() == [[True, True, True, False]]  # only the tie at the cut
    np.testing.assert_array_equal(aligned[2][0, :3], boxes[0, :3])  # the swap is undone
    # a candidate missing above the cut is compared, so a wrong graph still fails
    got[1][0, 0] = 2  # the graph's 0.5 row now has another class: torch's 0.5 row unmatched
    aligned, compare = align_candidates(1e-3)(ref, got)
    assert compare[0, 1]  # compared ...
    assert aligned[1][0, 1] != ref[1][0, 1] or aligned[0][0, 1] != ref[0][0, 1]  # ... differs
