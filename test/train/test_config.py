"""Training configs: presets, base chains, typed key=value overrides, clear errors."""

from __future__ import annotations

import pytest
import yaml

from deal_ros.errors import DealError
from deal_ros.train.config import (
    ConfigError,
    TrainConfig,
    all_keys,
    from_dict,
    load_config,
    preset_names,
    preset_path,
    to_dict,
)
from deal_ros.train.resolve import resume_config


def test_shipped_presets_load_and_validate():
    names = preset_names()
    for name in ("onboarding", "seg", "scene", "demo"):
        assert name in names
        cfg = load_config(name)
        assert cfg.stage in ("cam", "seg")
    assert load_config("seg").stage == "seg"
    assert load_config("onboarding").stage == "cam"


def test_base_chain_merges_key_by_key(tmp_path):
    scene, onboarding = load_config("scene"), load_config("onboarding")
    assert scene.data.startswith("scene:") and onboarding.data is None
    assert scene.model.output_stride != onboarding.model.output_stride  # overridden
    assert scene.model.backbone == onboarding.model.backbone  # inherited within model:
    assert scene.labeling.crf == onboarding.labeling.crf  # inherited
    (tmp_path / "a.yaml").write_text("train: {epochs: 7, batch_size: 3}\noptim: {lr: 0.5}\n")
    (tmp_path / "b.yaml").write_text(f"base: {tmp_path / 'a.yaml'}\ntrain: {{epochs: 2}}\n")
    b = load_config(str(tmp_path / "b.yaml"))
    assert (b.train.epochs, b.train.batch_size, b.optim.lr) == (2, 3, 0.5)


def test_overrides_are_typed():
    cfg = load_config(
        "onboarding",
        [
            "data=./episodes",
            "deal.weight=0",
            "train.epochs=3",
            "optim.lr=3e-3",
            "augment.hflip=false",
            "labeling.scales=[1.0, 0.5]",
            "augment.scale=0.5,2",
            "name=001",
            "model.pretrained=none",
            "train.max_steps=null",
            "data_options.n=5",
        ],
    )
    assert cfg.data == "./episodes"
    assert cfg.deal.weight == 0.0 and isinstance(cfg.deal.weight, float)
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.optim.lr == pytest.approx(0.003)
    assert cfg.augment.hflip is False
    assert cfg.labeling.scales == [1.0, 0.5]
    assert cfg.augment.scale == [0.5, 2.0]
    assert cfg.name == "001"  # a string field keeps the text
    assert cfg.model.pretrained is None
    assert cfg.train.max_steps is None
    assert cfg.data_options == {"n": 5}


def test_resume_is_bool_or_path():
    assert load_config(None, ["resume=true"]).resume is True
    assert load_config(None, ["resume=runs/mug-001"]).resume == "runs/mug-001"
    assert load_config(None, []).resume is False


def test_unknown_key_names_it_and_the_close_matches():
    with pytest.raises(ConfigError) as err:
        load_config("onboarding", ["deal.wieght=1"])
    msg = str(err.value)
    assert "deal.wieght" in msg and "deal.weight" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match=r"did you mean train\.epochs"):
        load_config("onboarding", ["epochs=3"])


def test_bad_values_and_sections_fail_with_one_line():
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer, got 'ten'"):
        load_config(None, ["train.epochs=ten"])
    with pytest.raises(ConfigError, match=r"augment\.hflip: expected true or false"):
        load_config(None, ["augment.hflip=maybe"])
    with pytest.raises(ConfigError, match="'deal' is a section"):
        load_config(None, ["deal=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["deal.weight"])
    with pytest.raises(ConfigError, match="stage: expected one of cam, seg"):
        load_config(None, ["stage=pseudo"])


def test_config_file_by_path_with_base_and_errors(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("base: scene\ntrain: {epochs: 2}\ndeal: {weight: 0.5}\n")
    cfg = load_config(str(good), ["seed=3"])
    assert (cfg.train.epochs, cfg.deal.weight, cfg.seed) == (2, 0.5, 3)
    assert cfg.data == load_config("scene").data

    typo = tmp_path / "typo.yaml"
    typo.write_text("train: {epocs: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(typo))
    assert str(typo) in str(err.value) and "train.epocs" in str(err.value)
    assert "train.epochs" in str(err.value)

    broken = tmp_path / "broken.yaml"
    broken.write_text("train: {epochs: 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(broken))

    with pytest.raises(ConfigError, match="no such file and no such preset"):
        preset_path("no-such-preset")


def test_round_trip_through_yaml_is_exact():
    cfg = load_config("scene", ["deal.weight=0.25", "labeling.bg_threshold=0.2"])
    text = yaml.safe_dump(to_dict(cfg))
    again = from_dict(yaml.safe_load(text))
    assert again == cfg


def test_every_schema_key_can_be_overridden_by_name():
    keys = all_keys()
    assert "deal.weight" in keys and "labeling.bg_threshold" in keys and "loss" in keys
    assert isinstance(load_config(None, ["labeling.crf=false"]), TrainConfig)


def test_resume_config_starts_from_the_saved_config(tmp_path):
    run = tmp_path / "runs" / "mug-001"
    run.mkdir(parents=True)
    saved = to_dict(load_config("scene", ["deal.weight=0.3", "seed=7"]))
    saved["meta"] = {"seed": 7}
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    cfg = resume_config(None, [f"resume={run}", "train.log_every=3"])
    assert cfg.deal.weight == 0.3 and cfg.seed == 7  # from the run
    assert cfg.train.log_every == 3  # this call's override
    assert cfg.run == str(run)
    with pytest.raises(DealError, match="no such run folder"):
        resume_config(None, [f"resume={tmp_path / 'nope'}"])
