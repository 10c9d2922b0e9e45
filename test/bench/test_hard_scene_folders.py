"""The two hard-data writers of bench/ (the datasets of bench/README.md), as users run them:
the script on the command line, the folder read back by ``voc:`` with the keys of the
benchmark (split, depth, vocabulary, labels_from=masks)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from deal_ros.data.registry import build_dataset

from paths import REPO


@pytest.mark.parametrize(
    ("script", "vocabulary"),
    [
        ("scene_voc.py", ["mug", "box", "ball", "can"]),
        ("slab_scenes.py", ["puck", "brick", "prism", "cross"]),
    ],
)
def test_writer_folders_read_back_with_the_benchmark_keys(tmp_path, script, vocabulary):
    out = tmp_path / "data"
    cmd = [sys.executable, str(REPO / "bench" / script), str(out), "--train", "3", "--val", "2"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    assert (out / "vocabulary.txt").read_text().split() == vocabulary
    for split, n in (("train", 3), ("val", 2)):
        ds = build_dataset(f"voc:{out}", split=split, depth=str(out / "depth"),
                           vocabulary=vocabulary, labels_from="masks")  # fmt: skip
        assert len(ds) == n and list(ds.classes) == vocabulary
        sample = ds[0]
        assert sample.rgb.shape == (240, 320, 3) and sample.depth.shape == (240, 320)
        assert 0.0 < float(sample.valid.mean()) < 0.99  # holes are there, mostly valid
        assert sample.labels.sum() >= 1  # image labels from the masks
        assert np.isin(np.unique(sample.mask), [0, *range(1, 5), 255]).all()
