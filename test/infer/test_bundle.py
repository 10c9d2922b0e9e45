"""Wrong or corrupt bundles fail at load with one clear line naming the bundle and the fault."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml

from deal_ros.errors import DealError
from deal_ros.infer import BundleError, Runtime, read_bundle
from deal_ros.infer.bundle import BUNDLE_FORMAT

from deploy_fixtures import cam_bundle, copy_bundle, scene_images


@pytest.fixture
def bundle(tmp_path):
    return copy_bundle(cam_bundle().path, tmp_path / "mug")


def _edit(path, **changes):
    spec = yaml.safe_load((path / "model.yaml").read_text())
    for dotted, value in changes.items():
        node = spec
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (path / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, DealError)
    return text


def test_a_good_bundle_reads_back(bundle):
    b = read_bundle(bundle)
    assert b.classes == ("mug", "box") and b.class_names == ["background", "mug", "box"]
    assert (b.input.height, b.input.width) == (64, 96) and b.cam_stride == 16
    assert b.postprocess.cam_threshold == pytest.approx(0.3)
    assert len(b.palette) == 3 and b.export["parity"]["max_abs"]["cams"] < 1e-3


@pytest.mark.parametrize(
    ("remove", "match"),
    [("model.yaml", "model.yaml is missing"), ("model.onnx", "model.onnx is missing")],
)
def test_missing_files(bundle, remove, match):
    (bundle / remove).unlink()
    with pytest.raises(BundleError, match=match) as exc:
        Runtime(bundle)
    assert str(bundle) in _one_line(exc)


def test_missing_folder(tmp_path):
    with pytest.raises(BundleError, match="no such folder"):
        read_bundle(tmp_path / "nothing")


def test_truncated_model_fails_the_checksum(bundle):
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="does not match the model_sha256") as exc:
        Runtime(bundle)
    _one_line(exc)


def test_corrupt_model_without_checksum_fails_in_onnxruntime(bundle):
    (bundle / "model.onnx").write_bytes(b"this is not an onnx file" * 10)
    _edit(bundle, model_sha256="")
    with pytest.raises(BundleError, match="cannot be loaded by ONNX Runtime") as exc:
        Runtime(bundle)
    _one_line(exc)


def test_class_count_disagreeing_with_the_graph(bundle):
    _edit(bundle, classes=["mug", "box", "ball"], palette=None)
    with pytest.raises(BundleError, match=r"model\.yaml lists 3 classes.*'scores'.*has 2") as exc:
        Runtime(bundle)
    _one_line(exc)


def test_input_size_mismatch(bundle):
    _edit(bundle, input__height=128)
    msg = r"input size mismatch: model\.yaml says 128x96, the graph takes 64x96"
    with pytest.raises(BundleError, match=msg):
        Runtime(bundle)


def test_size_override_needs_a_dynamic_graph(bundle):
    with pytest.raises(BundleError, match="fixed 64x96"):
        Runtime(bundle, input_size=(128, 192))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format": BUNDLE_FORMAT + 1}, "newer than this deal_ros reads"),
        ({"classes": []}, "'classes' must be a non-empty list"),
        ({"classes": ["mug", "mug"]}, "names repeat: mug"),
        ({"input__height": -3}, "'height' must be an integer >= 1"),
        ({"input__std": [1, 0, 1]}, "'input.std' must be > 0"),
        ({"postprocess__cam_threshold": 2.0}, "'cam_threshold' must be a number in \\[0, 1\\]"),
        ({"palette": [[0, 0, 0], [1, 2, 3]]}, "'palette' has 2 rows, needs 3"),
        ({"outputs": {"scores": {}}}, "'outputs' has no 'cams'"),
        ({"postprocess__mask_source": "seg_logits"}, "no seg_logits"),
    ],
)
def test_bad_model_yaml_values(bundle, changes, match):
    _edit(bundle, **changes)
    with pytest.raises(BundleError, match=match) as exc:
        read_bundle(bundle)
    assert "model.yaml" in _one_line(exc) or "format" in str(exc.value)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"postprocess__cam_thresold": 0.9},
         r"unknown key 'postprocess\.cam_thresold' \(did you mean "
         r"'postprocess\.cam_threshold'\?\)"),
        ({"input__widht": 96}, r"unknown key 'input\.widht' \(did you mean 'input\.width'\?\)"),
        ({"pallete": [[0, 0, 0]] * 3}, r"unknown key 'pallete' \(did you mean 'palette'\?\)"),
        ({"postprocess__nms_threshold": 0.5},
         r"'postprocess\.nms_threshold' is not read for task semantic \(only for task instance\)"),
        ({"zzz": 1}, r"unknown key 'zzz' \(known: format, task, "),
    ],
)  # fmt: skip
def test_unknown_model_yaml_keys_are_refused_naming_the_closest_known_one(bundle, changes, match):
    """A misspelled key would be ignored and the default used without a word: refused."""
    _edit(bundle, **changes)
    with pytest.raises(BundleError, match=match) as exc:
        Runtime(bundle)
    assert str(bundle) in _one_line(exc) and "model.yaml" in str(exc.value)


def test_an_instance_bundle_refuses_a_semantic_only_key(tmp_path):
    from instance_fixtures import box_bundle

    path = copy_bundle(box_bundle().path, tmp_path / "box")
    _edit(path, postprocess__cam_threshold=0.3)
    with pytest.raises(BundleError, match=r"'postprocess\.cam_threshold' is not read for task "
                                          r"instance \(only for task semantic\)"):  # fmt: skip
        read_bundle(path)
    _edit(path, postprocess={"score_threshold": 0.05}, instance__topk_=3)
    with pytest.raises(BundleError, match=r"unknown key 'instance\.topk_' \(did you mean "
                                          r"'instance\.topk'\?\)"):  # fmt: skip
        read_bundle(path)


def test_an_instance_bundle_crops_masks_to_their_boxes_by_its_box_margin(tmp_path):
    from deal_ros.core.boxes import pixel_box
    from deal_ros.core.placement import placement

    from instance_fixtures import box_bundle

    path = copy_bundle(box_bundle().path, tmp_path / "box")
    _edit(path, postprocess__box_margin="wide")
    with pytest.raises(BundleError, match=r"box_margin must be -1 or a pixel count >= 0, got "
                                          r"'wide'") as exc:  # fmt: skip
        read_bundle(path)
    assert "model.yaml" in _one_line(exc)
    frame = scene_images(1, (90, 120), seed=5)[0]
    _edit(path, postprocess__box_margin=-1)
    whole = Runtime(path, threads=1, score_threshold=0.05).detect(frame)
    _edit(path, postprocess__box_margin=1)
    assert read_bundle(path).instance.box_margin == 1.0
    cut = Runtime(path, threads=1, score_threshold=0.05).detect(frame)
    assert len(cut) == len(whole) > 0
    where = placement((90, 120), (64, 96), "pad")  # the bundle's fit: 90x120 -> 64x85
    margin = 1 * 120 / where.width  # one input pixel, in image pixels
    spilled = 0
    for mask, uncut, box in zip(cut.masks, whole.masks, cut.boxes):
        x0, y0, x1, y1 = pixel_box(box, mask.shape, margin)
        assert mask.sum() == mask[y0:y1, x0:x1].sum()  # nothing outside the box
        np.testing.assert_array_equal(mask[y0:y1, x0:x1], uncut[y0:y1, x0:x1])
        spilled += int(uncut.sum() - uncut[y0:y1, x0:x1].sum())
    assert spilled > 0  # the uncropped masks did reach past their boxes: the crop did work


def test_invalid_yaml_names_the_line(bundle):
    (bundle / "model.yaml").write_text("format: 1\nclasses: [mug\n")
    with pytest.raises(BundleError, match="not valid YAML at line"):
        read_bundle(bundle)


def test_the_runtime_never_imports_torch(bundle, tmp_path):
    import subprocess

    code = (
        "import sys, numpy as np\n"
        "from deal_ros.infer import Runtime\n"
        f"r = Runtime({str(bundle)!r}, threads=1)\n"
        "r.segment(np.zeros((30, 40, 3), np.uint8))\n"
        "bad = [m for m in ('torch', 'rclpy') if m in sys.modules]\n"
        "print('imported:', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
