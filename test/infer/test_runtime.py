"""The runtime over real bundles: outputs at the input image's size, equal to torch's result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deal_ros.infer import Runtime
from deal_ros.infer.providers import CPU

from deploy_fixtures import cam_bundle, scene_images, seg_bundle, torch_threads


def _torch_reference(net, rgb: np.ndarray, model_size, thr: float, score_thr: float):
    """Mask + heat map the slow, obvious way in torch (PIL-free resize of the input is avoided
    by feeding an image that already has the model's size)."""
    assert rgb.shape[:2] == tuple(model_size)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad(), torch_threads():
        out = net(x)
    scores = torch.sigmoid(out["logits"])[0]
    cams = F.relu(out["cam_logits"])
    cams = cams / (cams.amax(dim=(2, 3), keepdim=True) + 1e-5)
    up = F.interpolate(cams, size=rgb.shape[:2], mode="bilinear", align_corners=False)[0]
    present = scores >= score_thr
    stack = torch.cat([torch.full((1, *rgb.shape[:2]), thr), up * present[:, None, None]])
    return scores.numpy(), torch.argmax(stack, 0).numpy(), up.numpy(), stack.numpy()


def test_runtime_matches_torch_end_to_end():
    tiny = cam_bundle()
    rt = Runtime(tiny.path, providers="cpu", threads=1)
    assert rt.provider == CPU and "CPUExecutionProvider" in rt.describe()
    for rgb in scene_images(3, (64, 96), seed=5):
        res = rt.segment(rgb)
        scores, mask, up, stack = _torch_reference(
            tiny.cam_net, rgb, (64, 96), rt.cam_threshold, rt.score_threshold
        )
        np.testing.assert_allclose(res.scores, scores, atol=1e-4)
        top2 = np.sort(stack, axis=0)[-2:]
        clear = top2[1] - top2[0] > 1e-3  # ignore pixels within rounding of a tie
        assert clear.mean() > 0.95
        np.testing.assert_array_equal(res.mask[clear], mask[clear])
        if res.cam_class:
            np.testing.assert_allclose(res.cam, up[res.cam_class - 1], atol=1e-3)
        else:
            assert not res.cam.any()


@pytest.mark.parametrize("size", [(120, 160), (37, 53), (64, 96)])
def test_outputs_have_the_input_image_size(size):
    rt = Runtime(cam_bundle().path, threads=1)
    rgb = scene_images(1, size, seed=2)[0]
    res = rt.segment(rgb, cam_classes=[1, 2])
    assert res.mask.shape == size and res.mask.dtype == np.uint8
    assert res.cam.shape == size and res.cam.dtype == np.float32
    assert res.cam.min() >= 0.0 and res.cam.max() <= 1.0 + 1e-6
    assert res.overlay.shape == (*size, 3) and res.overlay.dtype == np.uint8
    assert sorted(res.class_cams) == [1, 2]
    assert set(res.timings) == {"preprocess", "run", "postprocess"}
    assert res.mask.max() <= 2


def test_mono8_input_and_output_switches():
    rt = Runtime(cam_bundle().path, threads=1)
    grey = scene_images(1, (48, 64))[0][:, :, 1]
    res = rt.segment(grey, cam=False, overlay=False)
    assert res.mask.shape == grey.shape and res.cam is None and res.overlay is None
    with pytest.raises(ValueError, match="expected an \\(H, W, 3\\) uint8"):
        rt.segment(np.zeros((10, 10, 4), np.uint8))


def test_thresholds_override_the_bundle():
    rt_all = Runtime(cam_bundle().path, threads=1, cam_threshold=0.0, score_threshold=0.0)
    rt_none = Runtime(cam_bundle().path, threads=1, score_threshold=1.0)
    rgb = scene_images(1, (64, 96), seed=3)[0]
    assert rt_none.segment(rgb).mask.max() == 0  # no class reaches score 1.0
    assert rt_all.segment(rgb).present.all()
    with pytest.raises(ValueError, match="cam_threshold must be in"):
        Runtime(cam_bundle().path, cam_threshold=1.5)


def test_unavailable_provider_is_reported_and_cpu_used():
    rt = Runtime(cam_bundle().path, providers="tensorrt,cuda", threads=1)
    assert rt.provider == CPU
    assert any("not available" in note for note in rt.notes)
    assert "not available" in rt.describe()


def test_stage2_bundle_uses_the_segmenter_and_takes_other_sizes():
    tiny = seg_bundle()
    rt = Runtime(tiny.path, threads=1, input_size=(96, 128))
    assert rt.mask_source == "seg_logits" and rt.input_size == (96, 128)
    rgb = scene_images(1, (96, 128), seed=4)[0]
    res = rt.segment(rgb)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad(), torch_threads():
        expected = tiny.seg_net(x)[0].argmax(0).numpy()
    assert (res.mask == expected).mean() > 0.99
    cams_only = Runtime(tiny.path, threads=1, mask_source="cams").segment(rgb)
    assert cams_only.mask.shape == res.mask.shape
    raw = rt.run(np.concatenate([rt.preprocess(rgb)] * 3))  # dynamic batch
    assert raw["scores"].shape == (3, 3) and raw["cams"].shape[:2] == (3, 3)


def test_semantic_thresholds_change_at_run_time_and_fall_back_to_the_bundle():
    rt = Runtime(cam_bundle().path, threads=1)
    pp = rt.bundle.postprocess
    rgb = scene_images(1, (48, 64), seed=5)[0]
    rt.set_thresholds(cam_threshold=0.0, score_threshold=0.0, nms_threshold=0.3)  # nms: unread
    assert (rt.cam_threshold, rt.score_threshold) == (0.0, 0.0)
    assert rt.segment(rgb).present.all()  # every class passes a presence score of 0
    rt.set_thresholds(score_threshold=1.0)
    assert not rt.segment(rgb).mask.any()
    rt.set_thresholds(cam_threshold=-1.0, score_threshold=None, overlay_alpha=0.25)
    assert (rt.cam_threshold, rt.score_threshold) == (pp.cam_threshold, pp.score_threshold)
    assert rt.overlay_alpha == 0.25
