"""Launch files cannot run here (no launch_ros on the registry): check them statically against
pyproject's scripts and the parameters real node instances declare over rclpy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib
import yaml

from paths import REPO

LAUNCH = REPO / "launch"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", "")) == name
    ]


def _kw(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def _dict_keys(tree: ast.AST) -> dict[str, set[str]]:
    """String keys given to each dict variable: ``v = {"k": ...}`` and ``v["k"] = ...``."""
    keys: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value, ast.Dict):
                    keys.setdefault(target.id, set()).update(
                        k.value for k in node.value.keys if isinstance(k, ast.Constant)
                    )
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and isinstance(target.slice, ast.Constant)
                ):
                    keys.setdefault(target.value.id, set()).add(target.slice.value)
    return keys


def _node_params(call: ast.Call, variables: dict[str, set[str]]) -> set[str]:
    params = _kw(call, "parameters")
    names: set[str] = set()
    for item in params.elts if isinstance(params, ast.List) else []:
        if isinstance(item, ast.Dict):
            names |= {k.value for k in item.keys if isinstance(k, ast.Constant)}
        elif isinstance(item, ast.Name) and item.id in variables:
            names |= variables[item.id]
    return names


def _parse(path: Path) -> ast.Module:
    source = path.read_text()
    compile(source, str(path), "exec")  # it compiles
    return ast.parse(source)


def _declared(context, node_class, **kwargs) -> dict[str, object]:
    from rclpy.exceptions import ParameterUninitializedException

    node = node_class(context=context, **kwargs)
    values: dict[str, object] = {}
    try:
        for name in node.list_parameters([], 0).names:
            try:
                values[name] = node.get_parameter(name).value
            except ParameterUninitializedException:  # typed, no default (e.g. labels)
                values[name] = None
        return values
    finally:
        node.destroy_node()


def _flatten(params: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.fixture(scope="module")
def scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("path", sorted(LAUNCH.glob("*.launch.py")), ids=lambda p: p.name)
def test_every_launch_file_compiles_and_names_real_executables(path, scripts):
    tree = _parse(path)
    assert "generate_launch_description" in {
        n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
    }
    nodes = _calls(tree, "Node")
    assert nodes, f"{path.name} starts no node"
    for call in _ours(nodes):
        executable = _kw(call, "executable").value
        assert executable in scripts, f"{path.name}: no console script '{executable}'"
        assert (REPO / "scripts" / executable).is_file()  # `ros2 run deal_ros <exe>`
    for call in nodes:
        assert _kw(call, "package").value in ("deal_ros", *OTHER_PACKAGES)
    # the nodes set the shipped Fast DDS profile themselves when the user chose none: a launch
    # file setting the variable would override the user's own profile
    assert _calls(tree, "SetEnvironmentVariable") == []


OTHER_PACKAGES = {"realsense2_camera": "realsense2_camera_node"}  # started on request


def _ours(nodes: list[ast.Call]) -> list[ast.Call]:
    return [c for c in nodes if _kw(c, "package").value == "deal_ros"]


def test_onboarding_launch_matches_the_nodes(ros_context, scripts):
    from deal_ros.nodes.recorder import RecorderNode
    from deal_ros.nodes.sonar_adapter import SonarAdapterNode

    tree = _parse(LAUNCH / "onboarding.launch.py")
    arguments = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"labels", "camera_namespace", "episodes_dir", "sonar", "camera",
            "lifecycle_autostart"} <= arguments  # fmt: skip
    declared = {
        "deal_recorder": _declared(ros_context, RecorderNode),
        "deal_sonar_adapter": _declared(ros_context, SonarAdapterNode),
    }
    assert scripts["deal-recorder"] == "deal_ros.nodes.recorder:main"
    assert scripts["deal-sonar-adapter"] == "deal_ros.nodes.sonar_adapter:main"
    variables = _dict_keys(tree)
    seen = set()
    for call in _ours(_calls(tree, "Node")):
        name = _kw(call, "name").value
        params = _node_params(call, variables)
        assert params, f"node {name}: no parameters found"
        missing = params - set(declared[name])
        assert not missing, f"launch sets parameters {missing} that {name} does not declare"
        seen.add(name)
    assert seen == set(declared)
    configs = {c.value.split("/")[-1] for c in ast.walk(tree) if _is_config(c)}
    assert configs == {"realsense.yaml", "sonar.yaml"}


def test_onboarding_starts_the_camera_driver_with_the_profile_only_when_unset():
    """camera:=true starts realsense2_camera_node with shipped_profile_env(...) as its
    additional environment: the shipped profile when the user set none, nothing otherwise
    (the user's variable is inherited); deal_ros.nodes.transport's test checks that function."""
    tree = _parse(LAUNCH / "onboarding.launch.py")
    (camera,) = [c for c in _calls(tree, "Node") if _kw(c, "package").value != "deal_ros"]
    assert _kw(camera, "executable").value == OTHER_PACKAGES["realsense2_camera"]
    env = _kw(camera, "additional_env")
    assert isinstance(env, ast.Call) and env.func.id == "shipped_profile_env"
    (params,) = _kw(camera, "parameters").elts
    assert {k.value for k in params.keys} >= {"align_depth.enable"}
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert any(
        n.module == "deal_ros.nodes.transport" and n.names[0].name == "shipped_profile_env"
        for n in imports
    )


def _is_config(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and str(node.value).endswith(".yaml")


@pytest.mark.parametrize("config", ["realsense.yaml", "sonar.yaml"])
def test_config_files_load_into_real_nodes(ros_context, config):
    """Every parameter in the YAML is declared by the node and accepted with its type when
    rcl loads the file exactly as `--params-file` does under ros2 launch."""
    from deal_ros.nodes.recorder import RecorderNode
    from deal_ros.nodes.sonar_adapter import SonarAdapterNode

    path = REPO / "config" / config
    sections = yaml.safe_load(path.read_text())
    classes = {"deal_recorder": RecorderNode, "deal_sonar_adapter": SonarAdapterNode}
    for key, section in sections.items():
        node_name = key.split("/")[-1]
        wanted = _flatten(section["ros__parameters"])
        defaults = _declared(ros_context, classes[node_name])
        assert set(wanted) <= set(defaults), set(wanted) - set(defaults)
        loaded = _declared(
            ros_context, classes[node_name], cli_args=["--ros-args", "--params-file", str(path)]
        )
        for name, value in wanted.items():
            assert loaded[name] == value, (config, name, loaded[name], value)


def test_segmentation_launch_declares_its_arguments():
    tree = _parse(LAUNCH / "segmentation.launch.py")
    arguments = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    assert {
        "model",
        "image",
        "depth",
        "camera_info",
        "autostart",
        "use_depth",
        "cloud",
    } <= arguments
