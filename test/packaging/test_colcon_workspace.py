"""`colcon build` of this repo in a fresh workspace against the ros-jazzy wheels, as a ROS 2 user
builds it, and the install space checked the way they use it (`source install/setup.bash`,
the ament index, `ros2 run`'s executables in lib/deal_ros/).

One build per test run (about 3 minutes on 2 cores); the checks share it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from paths import REPO

VENV = Path(sys.prefix)
EXECUTABLES = {
    "deal-recorder": "deal_recorder",
    "deal-segmenter": "deal_segmenter",
    "deal-sonar-adapter": "deal_sonar_adapter",
}

pytestmark = pytest.mark.slow


def _tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo, capture_output=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        pytest.skip("not a git checkout: the workspace is built from the tracked files")
    return [f for f in out.stdout.decode().split("\0") if f and (repo / f).is_file()]


def _sourced(ws: Path, command: str) -> str:
    """A bash line that sources the underlay (the venv's wheels) and the workspace first."""
    return (
        f"source {VENV}/bin/activate && export AMENT_PREFIX_PATH={VENV} && "
        f"source {ws}/install/setup.bash && {command}"
    )


def _bash(ws: Path, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    return subprocess.run(
        ["bash", "-c", _sourced(ws, command)],
        cwd=ws, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    colcon = VENV / "bin" / "colcon"
    if not colcon.is_file():
        pytest.fail("colcon is not in the venv: make setup installs colcon-common-extensions")
    repo = REPO
    ws = tmp_path_factory.mktemp("ws")
    src = ws / "src" / "deal_ros"
    for rel in _tracked_files(repo):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, src / rel)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["AMENT_PREFIX_PATH"] = str(VENV)
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"
    build = subprocess.run(
        [str(colcon), "build", "--event-handlers", "console_direct-"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    if build.returncode != 0:
        logs = sorted((ws / "log").rglob("stdout_stderr.log"))
        tail = logs[-1].read_text()[-3000:] if logs else build.stdout[-3000:]
        pytest.fail(f"colcon build failed ({build.returncode}):\n{tail}")
    return ws


def test_share_holds_package_launch_config_models(workspace: Path) -> None:
    share = workspace / "install" / "deal_ros" / "share" / "deal_ros"
    assert (share / "package.xml").is_file()
    assert {p.name for p in (share / "launch").glob("*.launch.py")} >= {
        "onboarding.launch.py",
        "segmentation.launch.py",
    }
    assert (share / "config" / "fastdds_shm.xml").is_file()
    assert list((share / "config").glob("*.yaml"))
    assert (share / "models" / "README.md").is_file()
    assert {p.name for p in (share / "msg").glob("*.msg")} >= {"Segmentation.msg"}


def test_ament_index_finds_the_package(workspace: Path) -> None:
    out = _bash(
        workspace,
        "python -c 'from ament_index_python.packages import get_package_share_directory as g; "
        'print(g("deal_ros"))\'',
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == workspace / "install" / "deal_ros" / "share" / "deal_ros"


def test_python_package_and_interfaces_come_from_the_install_space(workspace: Path) -> None:
    out = _bash(
        workspace,
        "cd / && python -c 'import deal_ros.msg, deal_ros.srv, deal_ros.nodes.segmenter as s; "
        "from deal_ros.msg import Segmentation, EpisodeStatus; "
        "from deal_ros.srv import StartEpisode; print(s.__file__)'",
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(workspace / "install")


def test_deal_command_runs_from_the_install_space(workspace: Path) -> None:
    out = _bash(workspace, "deal --help")
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "episodes" in out.stdout


@pytest.mark.parametrize("exe", sorted(EXECUTABLES))
def test_node_executable_starts_and_stops(workspace: Path, exe: str, tmp_path, ros_context):
    """`ros2 run deal_ros <exe>` runs lib/deal_ros/<exe>: it must come up as its node and end
    cleanly on Ctrl-C."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from rosutil import spin_until

    path = workspace / "install" / "deal_ros" / "lib" / "deal_ros" / exe
    assert os.access(path, os.X_OK), f"{path} is not executable"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    line = _sourced(workspace, f"exec {path} --ros-args -p episodes_dir:={tmp_path}/episodes")
    if exe != "deal-recorder":
        line = _sourced(workspace, f"exec {path}")
    proc = subprocess.Popen(
        ["bash", "-c", line], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    node = rclpy.create_node("workspace_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        up = spin_until(
            executor,
            lambda: proc.poll() is not None or EXECUTABLES[exe] in node.get_node_names(),
            timeout=60,
        )
        if not up or proc.poll() is not None:
            out = proc.stdout.read() if proc.poll() is not None else ""
            pytest.fail(f"{exe} never came up as {EXECUTABLES[exe]} (exit {proc.poll()}):\n{out}")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        executor.shutdown()
        node.destroy_node()
