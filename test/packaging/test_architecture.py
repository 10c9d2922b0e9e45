"""The layers of docs/architecture.md hold in the code: no import cycle between rooms or files,
no import running up a layer, no torch in core/ or infer/, no rclpy in training, every room
placed on a layer (read by tools/import_graph.py from the source, nothing imported)."""

from __future__ import annotations

import importlib.util

import pytest

from paths import REPO


@pytest.fixture(scope="module")
def graph() -> dict:
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "tools/import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.report(REPO)


def test_no_cycles(graph) -> None:
    assert graph["room_cycles"] == []
    assert graph["file_cycles"] == []


def test_no_import_runs_up_a_layer(graph) -> None:
    assert graph["up_layer"] == []


def test_no_forbidden_import(graph) -> None:
    assert graph["forbidden"] == []


def test_every_room_has_a_layer(graph) -> None:
    assert graph["rooms_without_layer"] == []


def test_the_engine_imports_no_method(graph) -> None:
    assert set(graph["room_edges"].get("engine", [])) <= {"core", "errors"}
    for method in ("train", "instance"):
        other = {"train", "instance"} - {method}
        assert not other & set(graph["room_edges"].get(method, [])), f"{method} imports {other}"
