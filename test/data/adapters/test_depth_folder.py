"""The depth folder option shared by the coco: and folder: adapters (DepthFolder)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deal_ros.data.adapters.base import DatasetError
from deal_ros.data.adapters.depth_folder import DepthFolder
from deal_ros.data.registry import build_dataset


def test_recursive_folder_reads_depth_from_the_same_subfolder(tmp_path):
    rgb = np.full((6, 8, 3), 90, np.uint8)
    for sub, metres in (("a", 1.25), ("b/c", 2.5)):
        (tmp_path / "img" / sub).mkdir(parents=True)
        (tmp_path / "depth" / sub).mkdir(parents=True)
        Image.fromarray(rgb).save(tmp_path / "img" / sub / "x.png")
        mm = np.full((6, 8), metres * 1000, np.uint16)
        mm[0, 0] = 0  # invalid
        Image.fromarray(mm).save(tmp_path / "depth" / sub / "x.png")
    ds = build_dataset(f"folder:{tmp_path / 'img'}", depth=tmp_path / "depth", recursive="true")
    assert [s.depth[1, 1] for s in ds] == pytest.approx([1.25, 2.5])
    assert all(not s.valid[0, 0] and s.valid.sum() == 47 for s in ds)
    far = build_dataset(
        f"folder:{tmp_path / 'img'}", depth=tmp_path / "depth", recursive="true", max_depth="2"
    )
    assert not far[1].valid.any() and far[0].valid.sum() == 47


def test_options_and_mismatched_sizes_name_the_adapter(tmp_path):
    with pytest.raises(DatasetError, match=r"coco: depth_scale='mm' is not a number"):
        DepthFolder.from_options("coco", None, "mm", None, None)
    with pytest.raises(DatasetError, match=r"folder depth: directory .*nope does not exist"):
        DepthFolder.from_options("folder", tmp_path / "nope", 0.001, None, None)
    folder = DepthFolder.from_options("folder", tmp_path, "0.001", "none", "3")
    assert folder.max_m == 3.0 and folder.min_m is None
    with pytest.raises(DatasetError, match=r"depth: no file .*x\{\.png,\.npy"):
        folder.load(np.zeros((4, 4, 3), np.uint8), "x", "img")
    np.save(tmp_path / "x.npy", np.ones((5, 5), np.float32))
    with pytest.raises(DatasetError, match=r"image a\.png: depth is 5x5 but the image is 4x4"):
        folder.load(np.zeros((4, 4, 3), np.uint8), "x", "image a.png")
    assert DepthFolder(None).load(np.zeros((4, 4, 3), np.uint8), "x", "img") == (None, None)
