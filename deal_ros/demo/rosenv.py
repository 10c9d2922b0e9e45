"""The private ROS 2 environment of one demo run (set before rclpy is imported).

Every demo run gets a DDS domain of its own (from its process id) and keeps discovery on this
machine, so parallel runs, tests and other ROS users never see its topics; camera-rate images
travel over the shipped Fast DDS shared-memory profile (``config/fastdds_shm.xml``).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

# one implementation of the profile look-up, the node executables' (nodes -> demo never)
from deal_ros.nodes.transport import PROFILE_NAME, find_fastdds_profile

__all__ = ["PROFILE_NAME", "demo_domain", "find_fastdds_profile", "ros_environment"]


def demo_domain(pid: int | None = None) -> int:
    """A DDS domain id in 1..101 from the process id (0 is everyone's default; above 101 the
    ports of a domain can fall into Linux's ephemeral port range)."""
    return 1 + (os.getpid() if pid is None else pid) % 101


def ros_environment(env: MutableMapping[str, str], domain: int) -> list[str]:
    """Set the demo's ROS variables in ``env`` (``os.environ`` before rclpy is imported, and
    inherited by every child); returns notes for the user (empty when all is well)."""
    notes = []
    env["ROS_DOMAIN_ID"] = str(domain)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in Jazzy; the range above replaces it
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")
    current = env.get("FASTRTPS_DEFAULT_PROFILES_FILE")
    if not (current and Path(current).is_file()):
        profile = find_fastdds_profile(env)
        if profile is None:
            env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
            notes.append(
                f"Fast DDS profile {PROFILE_NAME} not found (looked next to the package and in "
                "share/deal_ros/config): images may be lost between processes"
            )
        else:
            env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(profile)
    return notes
