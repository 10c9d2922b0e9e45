"""package.xml declares what the robot-side code imports, with rosdep keys that resolve on noble.

The resolutions come from test/packaging/rosdep_noble.yaml (a copy of the public rosdistro database:
no network here); the imports are read from the source with ``ast`` (nothing is run).
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

# Rooms that run on the robot (nodes, launch files, `deal infer` / `deal episodes`): their
# third-party imports must be declared. Training rooms (torch & co.) are pip extras.
ROBOT_ROOMS = ("core", "episodes", "scene", "infer", "nodes")
MODULE_KEYS = {
    "rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces",
    "builtin_interfaces": "builtin_interfaces", "lifecycle_msgs": "lifecycle_msgs",
    "diagnostic_msgs": "diagnostic_msgs", "visualization_msgs": "visualization_msgs",
    "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs", "geometry_msgs": "geometry_msgs",
    "launch": "launch", "launch_ros": "launch_ros",
    "numpy": "python3-numpy", "yaml": "python3-yaml", "tqdm": "python3-tqdm",
    "PIL": "python3-pil", "onnxruntime": "python3-onnxruntime-pip",
    "rosbags": "python3-rosbags-pip", "open3d": "python3-open3d-pip",
    "libusb_package": "python3-open3d-pip",  # open3d's libusb without root (pip, with open3d)
}  # fmt: skip
# Probed at run time only: GPU runtimes, the zstd/lz4 decompressors for compressed bags from
# other recorders ("compression" is the stdlib module of Python 3.14), isal's faster CRC-32.
OPTIONAL = {"tensorrt", "pycuda", "cuda", "compression", "backports", "lz4", "isal"}


@pytest.fixture
def package(repo_root: Path) -> dict[str, set[str]]:
    root = ET.parse(repo_root / "package.xml").getroot()
    tags = ("depend", "exec_depend", "build_depend", "buildtool_depend", "test_depend")
    return {t: {e.text.strip() for e in root.findall(t)} for t in tags}


@pytest.fixture
def rosdep(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "test/packaging/rosdep_noble.yaml").read_text())


def _third_party_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "deal_ros"}


def test_every_key_resolves_on_noble(package, rosdep) -> None:
    declared = set().union(*package.values())
    unknown = [
        key
        for key in sorted(declared)
        if key not in rosdep["jazzy_packages"] and not rosdep["ubuntu_noble"].get(key)
    ]
    assert not unknown, f"package.xml keys with no noble/Jazzy resolution: {unknown}"


def test_no_rmw_is_forced(package) -> None:
    assert not {k for k in set().union(*package.values()) if k.startswith("rmw_")}


def test_robot_side_imports_are_declared(repo_root: Path, package) -> None:
    runtime = package["depend"] | package["exec_depend"]
    files = [p for room in ROBOT_ROOMS for p in (repo_root / "deal_ros" / room).rglob("*.py")]
    files += sorted((repo_root / "launch").glob("*.py"))
    missing: dict[str, set[str]] = {}
    for path in files:
        for module in _third_party_imports(path) - OPTIONAL:
            key = MODULE_KEYS.get(module)
            if key is None or key not in runtime:
                missing.setdefault(module, set()).add(str(path.relative_to(repo_root)))
    assert not missing, f"imported but not declared in package.xml: {missing}"
