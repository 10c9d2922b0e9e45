"""A non-editable ``pip install .`` carries the Fast DDS profile where the demo looks for it."""

from __future__ import annotations

import shutil
import sys

import tomllib

import deal_ros
from deal_ros.demo import rosenv


def test_fastdds_profile_ships_as_data_files_where_the_demo_finds_it(
    repo_root, tmp_path, monkeypatch
):
    setuptools = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = {
        f"{target}/{src.rsplit('/', 1)[-1]}": src
        for target, sources in setuptools["data-files"].items()
        for src in sources
    }
    src = shipped["share/deal_ros/config/fastdds_shm.xml"]  # the ROS share/ layout, as colcon
    assert (repo_root / src).is_file()
    # the installed layout: the package in site-packages, data files under sys.prefix
    prefix, site = tmp_path / "prefix", tmp_path / "site"
    (site / "deal_ros").mkdir(parents=True)
    installed = prefix / "share/deal_ros/config/fastdds_shm.xml"
    installed.parent.mkdir(parents=True)
    shutil.copy(repo_root / src, installed)
    monkeypatch.setattr(deal_ros, "__file__", str(site / "deal_ros" / "__init__.py"))
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert rosenv.find_fastdds_profile() == installed
    monkeypatch.undo()
    assert rosenv.find_fastdds_profile() == repo_root / "config" / "fastdds_shm.xml"  # source
