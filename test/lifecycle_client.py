"""A lifecycle manager for the tests: a client node driving a managed node's transitions over
its real services (lifecycle_msgs ChangeState / GetState, as `ros2 lifecycle set` and Nav2's
lifecycle manager do) and collecting ``/diagnostics``.

The managed node spins on an executor of its own, which the test spins only when it chooses
(:meth:`LifecycleClient.spin_until` spins both): messages published while it does not spin
wait in the node's subscriptions, so a test can put frames there before a transition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

__all__ = ["LifecycleClient", "Transition", "values"]

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


class LifecycleClient:
    """Drives ``node`` (already built, in ``context``) from a client node named ``name``."""

    def __init__(self, context, node, name: str = "lifecycle_manager") -> None:
        self.node = node
        self.target = node.get_fully_qualified_name()
        self.client = rclpy.create_node(name, context=context)
        self.node_executor = SingleThreadedExecutor(context=context)
        self.node_executor.add_node(node)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.client)
        self.change = self.client.create_client(ChangeState, f"{self.target}/change_state")
        self.get = self.client.create_client(GetState, f"{self.target}/get_state")
        self.diagnostics: list[DiagnosticArray] = []
        self.client.create_subscription(
            DiagnosticArray, "/diagnostics", self.diagnostics.append, RELIABLE
        )
        ready = self.spin_until(
            lambda: self.change.service_is_ready() and self.get.service_is_ready()
        )
        assert ready, f"no lifecycle services on {self.target}"

    def spin_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        """Spin the client and the managed node until ``predicate()`` or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.01)
            self.node_executor.spin_once(timeout_sec=0.01)
        return predicate()

    def call(self, client, request) -> Any:
        future = client.call_async(request)
        assert self.spin_until(future.done), f"no response from {client.srv_name}"
        return future.result()

    def state(self) -> str:
        return self.call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(self.change, request).success

    def diagnostic(self, name: str, predicate: Callable[[DiagnosticStatus], bool]):
        """The latest ``/diagnostics`` status named ``name`` satisfying ``predicate`` (waits
        for one)."""

        def found() -> DiagnosticStatus | None:
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name == name and predicate(status):
                        return status
            return None

        seen = lambda: [(s.level, s.message) for a in self.diagnostics[-5:] for s in a.status]  # noqa: E731
        assert self.spin_until(lambda: found() is not None), seen()
        return found()

    def close(self) -> None:
        self.executor.shutdown()
        self.node_executor.shutdown()
        self.client.destroy_node()
        self.node.destroy_node()
