"""Shared fixtures: a private ROS 2 domain on loopback, and rclpy contexts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Every test run gets its own DDS domain and stays on this machine: parallel runs (and other
# users of the machine) never see each other's topics, and no discovery traffic leaves loopback.
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")
# No Fast DDS profile is set here: the tests run as users run the code. The node executables set
# the shipped profile themselves when none is set (deal_ros.nodes.transport); the test process
# and the driver processes it starts are a user's camera driver, which has none, unless a test
# gives one to a process of its own and says why (test/recorder_process.py, test_transport.py).


@pytest.fixture
def ros_context():
    """A fresh rclpy context, shut down after the test (nodes must be destroyed by then)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


@pytest.fixture
def one_torch_thread():
    """One torch thread during the test, the previous count restored after (training code sets
    its own count; on a busy 2-core machine two OpenMP threads run many times slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def repo_root() -> Path:
    return REPO
