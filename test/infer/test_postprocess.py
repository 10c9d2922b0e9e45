"""CAM -> mask / heat map / overlay, preprocessing and provider choice (numpy, PIL, ORT names)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deal_ros.errors import DealError
from deal_ros.infer import postprocess as post
from deal_ros.infer.bundle import InputSpec, default_palette
from deal_ros.infer.preprocess import Preprocessor
from deal_ros.infer.providers import (
    CPU,
    CUDA,
    TENSORRT,
    choose_providers,
    engine_key,
    parse_providers,
    provider_options,
)


def _torch_up(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(cams)[None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].numpy()


@pytest.mark.parametrize("size", [(48, 64), (61, 97), (8, 12)])
def test_upsample_matches_torch_bilinear(size):
    cam = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    np.testing.assert_allclose(post.upsample(cam, size), _torch_up(cam[None], size)[0], atol=1e-5)


def test_mask_is_argmax_over_background_threshold_and_present_classes():
    rng = np.random.default_rng(1)
    cams = rng.random((3, 5, 7), dtype=np.float32)
    scores = np.array([0.9, 0.2, 0.7], dtype=np.float32)  # class 2 absent
    size, thr = (40, 56), 0.45
    res = post.cams_to_mask(cams, scores, size, cam_threshold=thr, score_threshold=0.5)
    up = _torch_up(cams, size)
    present = (scores >= 0.5)[:, None, None]
    gated = np.concatenate([np.full((1, *size), thr, np.float32), up * present])
    expected = np.argmax(gated, axis=0)
    assert res.mask.dtype == np.uint8 and res.mask.shape == size
    # bilinear results agree to float rounding; compare away from near-ties
    top2 = np.sort(gated, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-4
    np.testing.assert_array_equal(res.mask[clear], expected[clear])
    assert set(np.unique(res.mask)) <= {0, 1, 3} and 2 not in res.mask
    assert res.present.tolist() == [True, False, True]
    assert res.strongest == 1 and sorted(res.maps) == [1, 3]


def test_single_present_class_and_no_present_class():
    cams = np.zeros((2, 2, 2), dtype=np.float32)
    cams[1] = [[0.0, 0.5], [0.8, 1.0]]
    res = post.cams_to_mask(cams, np.array([0.1, 0.9]), (2, 2), 0.5, 0.5)
    assert res.mask.tolist() == [[0, 0], [2, 2]]  # 0.5 ties with the background: background
    assert res.strongest == 2
    none = post.cams_to_mask(cams, np.array([0.1, 0.4]), (4, 4), 0.5, 0.5, extra_maps=[2])
    assert not none.mask.any() and none.strongest == 0 and list(none.maps) == [2]


def test_cams_to_mask_rejects_a_class_count_mismatch():
    with pytest.raises(ValueError, match="K = 3"):
        post.cams_to_mask(np.zeros((2, 4, 4)), np.zeros(3), (8, 8), 0.3, 0.5)


def test_seg_logits_mask_is_argmax_then_nearest():
    logits = np.zeros((3, 2, 2), dtype=np.float32)
    logits[2, 0, 1] = 5
    logits[1, 1, 0] = 5
    mask = post.seg_logits_to_mask(logits, (4, 4))
    assert mask.tolist() == [[0, 0, 2, 2], [0, 0, 2, 2], [1, 1, 0, 0], [1, 1, 0, 0]]


def test_overlay_blends_foreground_and_keeps_background():
    rgb = np.full((4, 5, 3), 100, dtype=np.uint8)
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[1:3, 2:4] = 1
    mask[0, 0] = 2
    palette = post.palette_array([(0, 0, 0), (200, 0, 0), (0, 250, 0)])
    out = post.overlay(rgb, mask, palette, alpha=0.5)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[mask == 0], rgb[mask == 0])
    np.testing.assert_allclose(out[1, 2], [150, 50, 50], atol=1)
    np.testing.assert_allclose(out[0, 0], [50, 175, 50], atol=1)
    np.testing.assert_array_equal(post.overlay(rgb, mask, palette, 0.0), rgb)
    with pytest.raises(ValueError, match="differ in size"):
        post.overlay(rgb, mask[:3], palette, 0.5)


def test_heat_map_colours_and_palette():
    heat = post.heat_to_rgb(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert heat.shape == (1, 3, 3) and heat.dtype == np.uint8
    assert heat[0, 0].tolist() == [0, 0, 128]  # dark blue at 0 ('jet')
    assert heat[0, 1, 1] > 250  # green-ish in the middle
    assert heat[0, 2].tolist() == [128, 0, 0]  # dark red at 1
    pal = default_palette(25)
    assert len(pal) == 26 and pal[0] == (0, 0, 0) and len(set(pal)) == 26


def test_depth_keep_drops_far_and_invalid_pixels():
    depth = np.array([[0.5, 3.0], [0.0, 1.0]], dtype=np.float32)
    valid = depth > 0
    keep = post.depth_keep(depth, valid, (2, 2), max_range_m=1.5)
    assert keep.tolist() == [[True, False], [False, True]]


def test_depth_keep_refuses_depth_of_another_size_instead_of_stretching_it():
    from deal_ros.core.errors import DepthFormatError

    depth = np.ones((480, 640), np.float32)
    with pytest.raises(DepthFormatError, match=r"depth is 640x480, the image 848x480") as exc:
        post.depth_keep(depth, depth > 0, (480, 848), max_range_m=1.5)
    assert "\n" not in str(exc.value) and "aligned to colour" in str(exc.value)


def test_preprocess_scales_normalises_and_resizes():
    rgb = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    plain = Preprocessor(InputSpec(height=30, width=40))(rgb, (30, 40))
    np.testing.assert_allclose(plain[0], rgb.transpose(2, 0, 1) / 255.0, atol=1e-6)
    spec = InputSpec(height=30, width=40, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    x = Preprocessor(spec)(rgb, (30, 40))
    ref = (rgb / 255.0 - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(x[0], ref.transpose(2, 0, 1), atol=1e-5)
    small = Preprocessor(spec)(rgb, (15, 20))
    assert small.shape == (1, 3, 15, 20) and small.dtype == np.float32
    grey = rgb[:, :, 0]
    mono = Preprocessor(spec)(grey, (30, 40))  # mono8 is repeated to three channels
    for c in range(3):
        np.testing.assert_allclose(mono[0, c], (grey / 255 - spec.mean[c]) / spec.std[c], atol=1e-5)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        Preprocessor(spec)(rgb.astype(np.float32), (30, 40))


def test_provider_choice_prefers_tensorrt_then_cuda_and_says_what_is_missing():
    everything = [TENSORRT, CUDA, CPU]
    assert choose_providers("auto", everything) == ([TENSORRT, CUDA, CPU], [])
    assert choose_providers("auto", [CUDA, CPU])[0] == [CUDA, CPU]
    assert choose_providers("cuda", everything)[0] == [CUDA, CPU]
    chosen, notes = choose_providers("tensorrt,cuda", [CPU])
    assert chosen == [CPU] and "TensorrtExecutionProvider, CUDAExecutionProvider" in notes[0]
    assert parse_providers(["CPUExecutionProvider"]) == [CPU]
    assert parse_providers(" auto ") is None
    with pytest.raises(DealError, match="unknown provider 'npu'"):
        parse_providers("cuda,npu")


def test_tensorrt_options_cache_engines_by_gpu_version_precision_and_model(tmp_path):
    a = engine_key("NVIDIA Jetson AGX Orin", "10.3.0", True, "abcdef0123456789")
    assert a == "nvidia-jetson-agx-orin-trt10.3.0-fp16-abcdef012345"
    assert a != engine_key("NVIDIA Jetson AGX Orin", "8.6.1", True, "abcdef0123456789")
    assert a != engine_key("NVIDIA Jetson AGX Orin", "10.3.0", False, "abcdef0123456789")
    opts = provider_options(
        TENSORRT, bundle_dir=tmp_path, input_name="image", input_size=(240, 320), fp16=True
    )
    assert opts["trt_engine_cache_enable"] and opts["trt_fp16_enable"]
    assert opts["trt_engine_cache_path"].startswith(str(tmp_path / "engine"))
    assert opts["trt_profile_opt_shapes"] == "image:1x3x240x320"
    assert provider_options(CPU, bundle_dir=tmp_path, input_name="image", input_size=(8, 8)) == {}


def test_preprocess_matches_the_training_resize_within_one_grey_level():
    from deal_ros.train.data import image_tensor, resize_image

    rgb = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for size in [(60, 80), (50, 75), (160, 200)]:
        ours = Preprocessor(InputSpec(*size))(rgb, size)
        theirs = resize_image(image_tensor(rgb), size).numpy()
        assert np.abs(ours - theirs).max() <= 1.5 / 255, size  # PIL rounds to uint8


def test_engine_cache_falls_back_to_the_user_cache_for_a_read_only_bundle(tmp_path, monkeypatch):
    from deal_ros.infer.providers import writable_cache_dir

    assert writable_cache_dir(tmp_path / "b" / "engine" / "k") == tmp_path / "b" / "engine" / "k"
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "engine").write_text("a file where the folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    got = writable_cache_dir(tmp_path / "ro" / "engine" / "gpu-trt10-fp16")
    assert got == tmp_path / "cache" / "deal_ros" / "engines" / "gpu-trt10-fp16" and got.is_dir()


@pytest.mark.parametrize(
    ("image", "fit"),
    [((480, 640), "pad"), ((240, 320), "pad"), ((720, 1280), "pad"), ((300, 500), "resize"),
     ((90, 70), "pad")],
)  # fmt: skip
def test_threshold_on_image_equals_the_whole_resize(image, fit):
    """Resizing only near above-threshold cells gives the whole resize's mask (pixels within
    float rounding of the threshold aside): instance masks take this path."""
    from deal_ros.core.placement import placement
    from deal_ros.infer.postprocess import threshold_on_image, unplace, upsample

    rng = np.random.default_rng(sum(image))
    size = (480, 640)
    where = placement(image, size, fit)
    for trial in range(6):
        plane = rng.random((120, 160)).astype(np.float32) * 0.45  # below 0.5 ...
        y = rng.integers(where.top // 4, (where.top + where.height) // 4)  # on the image
        x = rng.integers(where.left // 4, (where.left + where.width) // 4)
        plane[max(y - 9, 0) : y + 9, max(x - 12, 0) : x + 12] += 0.3  # ... but one object
        if trial == 5:
            plane[:] = 0.1  # nothing: an empty mask
        full = unplace(upsample(plane, size), where)
        got = threshold_on_image(plane, size, where, 0.5)
        assert got.shape == image and got.dtype == bool
        differ = got != (full > 0.5)
        assert not differ[np.abs(full - 0.5) > 1e-5].any()
        assert (full > 0.5).any() == (trial < 5)
