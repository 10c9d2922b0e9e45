"""DEAL on vs off (deal_ros.train.compare, `deal bench train`): the summary's arithmetic, the
held-out scoring of mode=multi, and the --help of the comparison."""

from __future__ import annotations

import math

import pytest

from deal_ros.cli import main as deal
from deal_ros.train.compare import MULTI, format_summary, summarise

TINY = [
    "data=scene:n=12,seed=0,size=48x64",
    "input.height=48",
    "input.width=64",
    "model.pretrained=none",
    "train.batch_size=4",
    "train.max_steps=2",
    "report=false",
]


def _arm(cam_best: float, cam_thr: float, pseudo: float) -> dict[str, float]:
    return {"cam_best_miou": cam_best, "cam_miou_at_threshold": cam_thr, "pseudo_miou": pseudo}


def test_summary_holds_means_stds_and_paired_differences():
    rows = [
        {"seed": 0, "deal": _arm(0.50, 0.40, 0.55), "baseline": _arm(0.45, 0.42, 0.50)},
        {"seed": 1, "deal": _arm(0.48, 0.41, 0.51), "baseline": _arm(0.40, 0.40, 0.49)},
        {"seed": 2, "deal": _arm(0.52, 0.39, 0.53), "baseline": _arm(0.47, 0.41, 0.46)},
    ]
    s = summarise(rows)
    pseudo = s["pseudo_miou"]
    assert pseudo["deltas"] == pytest.approx([0.05, 0.02, 0.07])
    assert pseudo["delta"] == pytest.approx(0.14 / 3)
    assert pseudo["delta_std"] == pytest.approx(0.025166, abs=1e-5)  # sample std
    assert pseudo["deal"] == pytest.approx(0.53) and pseudo["baseline"] == pytest.approx(1.45 / 3)
    assert pseudo["ahead_every_seed"] and not s["cam_miou_at_threshold"]["ahead_every_seed"]
    text = format_summary({"rows": rows, "summary": s})
    line = next(x for x in text.splitlines() if x.lstrip().startswith("pseudo"))
    assert "+4.67" in line and "+5.00 +2.00 +7.00" in line and "ahead on every seed" in line
    one = summarise(rows[:1])
    assert math.isnan(one["pseudo_miou"]["delta_std"])  # one seed: no std, shown as "-"


def test_bench_train_help_answers(capsys):
    assert deal(["bench", "train", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: deal bench train")
    for key in ("seeds=", "preset=", "mode=multi", "eval_split=", "crf=", "limit=", "out="):
        assert key in out, key


def test_bench_train_mode_multi_scores_the_held_out_scenes(capsys, tmp_path):
    """mode=multi trains on MULTI['train'] unless data= is given, and always scores the held-out
    MULTI['eval'] scenes (another generator seed); the eval data is in each arm's eval.json."""
    rc = deal(["bench", "train", "seeds=0", "mode=multi", *TINY, "crf=false", "limit=2",
               f"out={tmp_path}"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "DEAL vs baseline, 1 seed(s)" in out
    assert f"scored on {MULTI['eval']}:" in out
    assert "seed=1000" in MULTI["eval"] and "mode=multi" in MULTI["eval"]
    assert deal(["bench", "train", "mode=single"]) == 1
    assert "the only mode is multi" in capsys.readouterr().err
