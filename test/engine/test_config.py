"""One set of config helpers for every stage's schema (TrainConfig and the box BoxTrainConfig)."""

from __future__ import annotations

import pytest

from deal_ros.instance.config import (
    BoxTrainConfig,
    apply_box_overrides,
    box_config_from_dict,
    load_box_config,
    read_box_file,
)
from deal_ros.train.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    read_config_file,
)


def test_load_config_takes_the_schema():
    box = load_config("box", ["loss.depth_tau=0.7", "name=001"], schema=BoxTrainConfig)
    assert isinstance(box, BoxTrainConfig) and box.loss.depth_tau == 0.7 and box.name == "001"
    assert load_box_config("box", ["loss.depth_tau=0.7", "name=001"]) == box
    assert isinstance(load_config("onboarding"), TrainConfig)


def test_unknown_keys_are_matched_against_the_schema_in_use(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: box\nloss:\n  depth_tua: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml'.*'loss\.depth_tua'.*loss\.depth_tau"):
        load_box_config(str(bad))
    with pytest.raises(ConfigError, match=r"'model\.fpn_chanels'.*model\.fpn_channels"):
        from_dict({"model": {"fpn_chanels": 8}}, BoxTrainConfig)
    with pytest.raises(ConfigError, match=r"override: unknown config key 'epochs'.*train\.epochs"):
        apply_box_overrides({}, ["epochs=3"])
    # the cam/seg schema does not know box keys, and says so naming the file
    with pytest.raises(ConfigError, match=r"box\.yaml'.*unknown config key"):
        read_config_file("box")
    assert read_box_file("box")["stage"] == "box" and read_box_file("scene")["stage"] == "cam"


def test_override_values_are_typed_for_their_field_in_both_schemas():
    data = apply_box_overrides({}, ["resume=true", "name=001", "data_options.size=64x96"])
    assert data == {"resume": True, "name": "001", "data_options": {"size": "64x96"}}
    cfg = box_config_from_dict({**data, "meta": {"x": 1}})
    assert cfg.resume is True and cfg.name == "001" and cfg.data_options == {"size": "64x96"}
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer, got 'ten'"):
        apply_box_overrides({}, ["train.epochs=ten"])
    with pytest.raises(ConfigError, match=r"'loss' is a section; set one of loss\.focal_alpha"):
        apply_box_overrides({}, ["loss=3"])
    assert apply_overrides({}, ["deal.mu=3"]) == {"deal": {"mu": 3.0}}
    with pytest.raises(ConfigError, match="multiples of 8"):
        box_config_from_dict({"input": {"height": 100}})


def test_lr_warmup_in_steps_or_as_a_fraction_of_the_run():
    from deal_ros.engine.loop import lr_factor

    steps = load_config(None, ["optim.warmup_steps=50", "optim.schedule=constant"])
    frac = load_config(None, ["optim.warmup_steps=0.25", "optim.schedule=constant"])
    assert [lr_factor(s, 200, steps) for s in (0, 24, 49, 100)] == [0.02, 0.5, 1.0, 1.0]
    assert [lr_factor(s, 200, frac) for s in (0, 24, 49, 100)] == [0.02, 0.5, 1.0, 1.0]
    assert lr_factor(24, 400, frac) == pytest.approx(0.25)  # a quarter of 400 steps
