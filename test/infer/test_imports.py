"""infer/ and the core geometry stay torch-free, rclpy-free and free of import circles."""

from __future__ import annotations

import json
import subprocess
import sys

ROOMS = ("deal_ros.infer", "deal_ros.core")


def _graph(repo_root) -> dict:
    out = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "import_graph.py"), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def _ours(module: str) -> bool:
    return any(module == room or module.startswith(room + ".") for room in ROOMS)


def test_no_import_circle_or_forbidden_import_in_infer_and_core(repo_root):
    graph = _graph(repo_root)
    assert [c for c in graph["file_cycles"] if any(map(_ours, c))] == []
    # "deal_ros.infer.x imports torch", "deal_ros.infer.x -> deal_ros.eval.y"
    assert [line for line in graph["forbidden"] if _ours(line.split()[0])] == []
    assert [line for line in graph["up_layer"] if _ours(line.split()[0])] == []


def test_importing_every_infer_module_loads_neither_torch_nor_rclpy(repo_root):
    """At run time, through every module they import (the static check above sees only the
    room's own import lines)."""
    modules = sorted(
        "deal_ros.infer." + p.stem
        for p in (repo_root / "deal_ros" / "infer").glob("*.py")
        if p.stem != "__init__"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'rclpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert len(modules) >= 8 and out.stdout.strip() == "[]", out.stdout
