"""Small helpers for tests that run real rclpy nodes."""

from __future__ import annotations

import time
from collections.abc import Callable


def spin_until(executor, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def wait_for_subscribers(executor, publisher, count: int = 1, timeout: float = 10.0) -> bool:
    """Wait until ``publisher`` sees ``count`` matched subscriptions (discovery done)."""
    return spin_until(executor, lambda: publisher.get_subscription_count() >= count, timeout)
