"""Old import paths of moved modules still work for one release, with a DeprecationWarning."""

import importlib
import sys

import pytest

MOVED = {
    "deal_ros.data.episodes": "deal_ros.episodes.store",
    "deal_ros.data.episode_meta": "deal_ros.episodes.meta",
    "deal_ros.data.episode_writer": "deal_ros.episodes.writer",
    "deal_ros.data.episode_repair": "deal_ros.episodes.repair",
    "deal_ros.data.recording": "deal_ros.episodes.recording",
    "deal_ros.data.cdr_image": "deal_ros.episodes.cdr_image",
    "deal_ros.data.keyframes": "deal_ros.episodes.keyframes",
    "deal_ros.data.mcap_writer": "deal_ros.episodes.mcap_writer",
    "deal_ros.data.mcap_recover": "deal_ros.episodes.mcap_recover",
    "deal_ros.data.bag_io": "deal_ros.episodes.bag_io",
    "deal_ros.data.scene": "deal_ros.scene.generator",
    "deal_ros.data.scene_geometry": "deal_ros.scene.geometry",
    "deal_ros.data.scene_objects": "deal_ros.scene.objects",
    "deal_ros.data.scene_sensor": "deal_ros.scene.sensor",
    "deal_ros.data.scene_texture": "deal_ros.scene.texture",
    "deal_ros.data.scene_view": "deal_ros.scene.view",
    "deal_ros.infer.objects": "deal_ros.core.cloud_cleaner",
    "deal_ros.train.loop": "deal_ros.engine.loop",
    "deal_ros.train.checkpoints": "deal_ros.engine.checkpoints",
    "deal_ros.train.runfolder": "deal_ros.engine.runfolder",
    "deal_ros.train.log": "deal_ros.engine.log",
    "deal_ros.train.ddp": "deal_ros.engine.ddp",
    "deal_ros.train.stages.common": "deal_ros.engine.runfolder",
    "deal_ros.instance.ema": "deal_ros.engine.ema",
    "deal_ros.train.evaluate_bundle": "deal_ros.eval.bundle",
    "deal_ros.train.results_text": "deal_ros.eval.results_text",
    "deal_ros.instance.export": "deal_ros.export.instance_onnx",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_path_warns_and_is_the_new_module(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_old_names_keep_their_objects() -> None:
    sys.modules.pop("deal_ros.data.scene", None)
    with pytest.warns(DeprecationWarning):
        from deal_ros.data.scene import SceneGenerator
    from deal_ros.scene import SceneGenerator as New

    assert SceneGenerator is New
