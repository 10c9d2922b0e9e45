"""Lifecycle (managed) nodes for deal_ros: ``rclpy.lifecycle`` with one-line errors and autostart.

A managed node goes ``unconfigured -> inactive -> active`` and back through the standard
transitions (``ros2 lifecycle set /deal_segmenter configure``, a Nav2-style lifecycle manager,
or ``lifecycle_msgs/srv/ChangeState`` on ``~/change_state``). :class:`ManagedNode` maps them
onto five hooks a node overrides, all optional:

=================  ==========================================================================
``on_setup()``     configure: load what is slow (a model, a store); no topic traffic yet
``on_start()``     activate: subscribe, start workers (the node's lifecycle publishers are
                   enabled just before, so the first frame can be published)
``on_stop()``      deactivate: unsubscribe, stop workers (publishers disabled just after,
                   so the frame in progress is still published)
``on_teardown()``  cleanup: release what ``on_setup`` made (also on shutdown and after an
                   error, so a node can always be configured again)
``on_finish()``    shutdown (to ``finalized``), after ``on_stop``/``on_teardown`` as needed
=================  ==========================================================================

A hook fails with a :class:`~deal_ros.errors.DealError`: one error line naming the transition,
``FAILURE`` (the node stays where it was, e.g. unconfigured after a model that does not load);
any other exception is logged with its type (rclpy would swallow it silently) and is an
``ERROR`` (the node cleans up and returns to unconfigured). Every successful transition is one
info line (``active``, ``inactive``, ...).

``autostart`` (parameter, default true, read-only): the node configures and activates itself
when built (:meth:`ManagedNode.autostart_now`), so ``ros2 run`` and launch files behave as with
a plain node; false waits for a lifecycle manager. A failed autostart can be retried by the node
(:attr:`ManagedNode.autostart_failed`), e.g. when its ``model`` parameter is set.

:meth:`ManagedNode.close` (called by :func:`deal_ros.nodes._common.run_node` on Ctrl-C /
SIGTERM) runs the shutdown transition from whatever state the node is in, so a managed node
stops exactly like a plain one.

Converting a node (the recorder, the sonar adapter): derive from :class:`ManagedNode` instead
of ``rclpy.node.Node``, move the slow part of ``__init__`` into ``on_setup``, the
subscriptions into ``on_start``/``on_stop``, make outputs with
``create_lifecycle_publisher``, and call ``self.autostart_now()`` at the end of ``__init__``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from deal_ros.errors import DealError
from deal_ros.nodes._common import declare

__all__ = ["PRIMARY_STATES", "ManagedNode", "TransitionCallbackReturn"]

PRIMARY_STATES = ("unconfigured", "inactive", "active", "finalized")
_SUCCESS = TransitionCallbackReturn.SUCCESS
_FAILURE = TransitionCallbackReturn.FAILURE
_ERROR = TransitionCallbackReturn.ERROR


class ManagedNode(LifecycleNode):
    """A lifecycle node with the hooks, the one-line errors and the ``autostart`` parameter of
    the module docstring. ``autostart_parameter``: the parameter's name (a node whose
    ``autostart`` already means something else can choose another)."""

    def __init__(
        self, node_name: str, *, autostart_parameter: str = "autostart", **kwargs: Any
    ) -> None:
        super().__init__(node_name, **kwargs)
        self.autostart = bool(
            declare(
                self,
                autostart_parameter,
                True,
                "configure and activate when the node starts (false: wait for a lifecycle "
                "manager, e.g. `ros2 lifecycle set <node> configure`, then `activate`)",
                read_only=True,
            )
        )
        self.autostart_failed = False  # an autostart transition failed: the node may retry
        self.transition_error = ""  # the last failed transition's line ('' after a success)

    # ------------------------------------------------------------------ hooks (override)
    def on_setup(self) -> None:
        """configure: load what is slow."""

    def on_start(self) -> None:
        """activate: subscribe, start workers."""

    def on_stop(self) -> None:
        """deactivate: unsubscribe, stop workers."""

    def on_teardown(self) -> None:
        """cleanup: release what :meth:`on_setup` made."""

    def on_finish(self) -> None:
        """shutdown: last words before ``finalized``."""

    # ------------------------------------------------------------------ state
    @property
    def lifecycle_state(self) -> str:
        """The current state's label: unconfigured, inactive, active, finalized (or a
        transition state such as configuring while a transition runs)."""
        return self._state_machine.current_state[1]

    @property
    def is_active(self) -> bool:
        return self.lifecycle_state == "active"

    @property
    def is_configured(self) -> bool:
        """Inactive or active (``on_setup`` done, ``on_teardown`` not yet)."""
        return self.lifecycle_state in ("inactive", "active", "activating", "deactivating")

    def autostart_now(self) -> bool:
        """With ``autostart``: configure, then activate; True when active. A failure is
        logged by the transition (one line) and remembered in :attr:`autostart_failed`."""
        if not self.autostart:
            self.get_logger().info(
                "unconfigured (autostart false): waiting for configure and activate"
            )
            return False
        ok = self.trigger_configure() == _SUCCESS and self.trigger_activate() == _SUCCESS
        self.autostart_failed = not ok
        return ok

    def close(self) -> None:
        """Run the shutdown transition from any primary state (idempotent). When the
        transition itself cannot run (the rclpy context is already gone), the hooks still do:
        workers are never left running."""
        state = self.lifecycle_state
        if state not in PRIMARY_STATES[:3]:
            return
        try:
            self.trigger_shutdown()
        except Exception as exc:  # e.g. the context shut down before the node
            self.get_logger().warning(f"shutdown transition failed ({exc}); stopping anyway")
            for hook in (self.on_stop, self.on_teardown, self.on_finish):
                with contextlib.suppress(Exception):  # best effort: the process is going down
                    hook()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()

    # ------------------------------------------------------------------ transitions
    def _run(self, name: str, *steps: Callable[[], None]) -> TransitionCallbackReturn:
        """Run ``steps`` for transition ``name``: DealError -> FAILURE, other -> ERROR."""
        try:
            for step in steps:
                step()
        except DealError as exc:
            self.transition_error = f"{name} failed: {exc}"
            self.get_logger().error(self.transition_error)
            return _FAILURE
        except Exception as exc:  # a bug or an rcl error: say what, never silently
            self.transition_error = f"{name} failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(self.transition_error)
            return _ERROR
        self.transition_error = ""
        return _SUCCESS

    def _said(self, ret: TransitionCallbackReturn, line: str) -> TransitionCallbackReturn:
        if ret == _SUCCESS:
            self.get_logger().info(line)
        return ret

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._said(self._run("configure", self.on_setup), "inactive (configured)")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        super().on_activate(state)  # enable the lifecycle publishers first
        ret = self._run("activate", self.on_start)
        if ret != _SUCCESS:
            super().on_deactivate(state)
        return self._said(ret, "active")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = self._run("deactivate", self.on_stop)
        super().on_deactivate(state)  # publishers off after the last frame went out
        return self._said(ret, "inactive (deactivated: not processing)")

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._said(self._run("cleanup", self.on_teardown), "unconfigured (cleaned up)")

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        steps: list[Callable[[], None]] = []
        if state.label == "active":
            steps.append(self.on_stop)
        if state.label in ("active", "inactive"):
            steps.append(self.on_teardown)
        steps.append(self.on_finish)
        ret = self._run("shutdown", *steps)
        if state.label == "active":
            super().on_deactivate(state)
        return self._said(ret, "finalized (shut down)")

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """After an ERROR: stop and release everything, back to unconfigured."""
        super().on_deactivate(state)
        ret = self._run("error recovery", self.on_stop, self.on_teardown)
        return self._said(ret, "unconfigured (recovered from an error)")
