"""The shipped Fast DDS profile for the node executables (set before rclpy starts its DDS
participant).

Camera frames (640x480 rgb8 is 0.9 MB, 848x480 1.2 MB) do not fit Fast DDS's default 0.5 MB
shared-memory segment: with default settings large samples are fragmented and frames are lost
between processes without a word (issue 14). ``config/fastdds_shm.xml`` gives a 64 MB segment.
:func:`use_shipped_profile` makes ``deal-recorder``, ``deal-segmenter`` and
``deal-sonar-adapter`` (and ``ros2 run``) use it when the user has set none (the launch files
therefore set nothing for them), and leaves alone:

* a profile the user chose: ``FASTRTPS_DEFAULT_PROFILES_FILE`` (or Fast DDS 3's
  ``FASTDDS_DEFAULT_PROFILES_FILE``) set, or a ``DEFAULT_FASTRTPS_PROFILES.xml`` in the
  working directory (which Fast DDS loads by itself);
* another middleware: ``RMW_IMPLEMENTATION`` set to anything but a Fast DDS RMW.

Fast DDS reads the variable once per process, when the first participant is made (rclpy's
init), so :func:`deal_ros.nodes._common.run_node` calls this before ``rclpy.init``; the
test checks the effect (the process maps a 64 MB segment) rather than the variable.

The SENDER's segment decides (measured: a camera driver with the default 0.5 MB segment loses
best-effort 848x480 frames whatever profile the receiver has), so the camera driver needs the
profile too: :func:`shipped_profile_env` gives the variables for such a process
(``onboarding.launch.py camera:=true`` starts the RealSense driver with them).
The profile is found by :func:`find_fastdds_profile` (next to the package, then
``<prefix>/share/deal_ros/config`` of every ROS prefix), the one look-up: ``deal demo``'s
:mod:`deal_ros.demo.rosenv` imports it from here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

import deal_ros

__all__ = [
    "FASTDDS_RMWS",
    "PROFILE_NAME",
    "PROFILE_VARIABLES",
    "find_fastdds_profile",
    "shipped_profile_env",
    "use_shipped_profile",
]

PROFILE_NAME = "fastdds_shm.xml"
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
FASTDDS_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp", "rmw_fastdds_cpp")
_CWD_PROFILE = "DEFAULT_FASTRTPS_PROFILES.xml"


def find_fastdds_profile(env: MutableMapping[str, str] | None = None) -> Path | None:
    """The package's Fast DDS profile: in the source tree / editable install
    (``<repo>/config``), then in ROS install prefixes (``<prefix>/share/deal_ros/config``)."""
    env = os.environ if env is None else env
    candidates = [Path(deal_ros.__file__).resolve().parents[1] / "config" / PROFILE_NAME]
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    candidates += [Path(p) / "share" / "deal_ros" / "config" / PROFILE_NAME for p in prefixes]
    return next((c for c in candidates if c.is_file()), None)


def use_shipped_profile(env: MutableMapping[str, str] | None = None) -> str:
    """Point ``FASTRTPS_DEFAULT_PROFILES_FILE`` at the shipped profile in ``env`` (default
    ``os.environ``) unless the user chose a profile or another RMW (module docstring). Returns
    the one line to log ("" when the user's choice was left alone)."""
    env = os.environ if env is None else env
    rmw = env.get("RMW_IMPLEMENTATION", "")
    if rmw and rmw not in FASTDDS_RMWS:
        return ""
    chosen = [(name, env[name]) for name in PROFILE_VARIABLES if env.get(name)]
    if chosen:
        name, value = chosen[0]
        if not Path(value).is_file():
            return (
                f"transport: {name}={value} is not a file: Fast DDS falls back to its defaults "
                "(camera frames may be lost between processes)"
            )
        return ""
    if Path(_CWD_PROFILE).is_file():
        return ""
    profile = find_fastdds_profile(env)
    if profile is None:
        return (
            f"transport: the shipped Fast DDS profile {PROFILE_NAME} was not found (looked next "
            "to the package and in share/deal_ros/config): camera frames may be lost between "
            "processes; set FASTRTPS_DEFAULT_PROFILES_FILE"
        )
    env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(profile)
    return (
        f"transport: using the shipped Fast DDS profile {profile} (shared memory sized for "
        "camera frames); set FASTRTPS_DEFAULT_PROFILES_FILE to use your own"
    )


def shipped_profile_env(env: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The variables another process started from ``env`` (default ``os.environ``) needs to
    use the shipped profile, by :func:`use_shipped_profile`'s rules: ``{}`` when the user chose
    a profile or another RMW, or the profile is not found. For a process that does not set it
    itself, e.g. the camera driver of ``onboarding.launch.py camera:=true``: the sender's
    shared-memory segment decides whether camera frames fit."""
    base = dict(os.environ if env is None else env)
    probe = dict(base)
    use_shipped_profile(probe)
    return {k: v for k, v in probe.items() if base.get(k) != v}
