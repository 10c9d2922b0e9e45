"""The demo's children and its Ctrl-C handling, in this process with real signals."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import weakref

import pytest

from deal_ros.demo.children import Children
from deal_ros.demo.pipeline import _terminate_as_interrupt


class _Target:
    pass


def _signal_inside_a_weakref_callback() -> None:
    """Deliver SIGINT while Python runs a weakref callback: the KeyboardInterrupt the
    handler raises there is printed as "Exception ignored" and swallowed (the race that let
    a Ctrl-C during an import's module lock go unseen)."""

    def callback(_ref) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs here, inside the callback

    target = _Target()
    ref = weakref.ref(target, callback)
    del target
    gc.collect()
    assert ref() is None


SWALLOWED = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@SWALLOWED
def test_a_swallowed_interrupt_is_raised_at_the_next_check(tmp_path):
    children = Children(tmp_path)
    with _terminate_as_interrupt(children):
        _signal_inside_a_weakref_callback()  # returns: the interrupt was swallowed
        assert children.signalled == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            children.check()


@SWALLOWED
def test_a_run_child_that_ended_after_a_swallowed_interrupt_raises_it(tmp_path):
    children = Children(tmp_path)
    with _terminate_as_interrupt(children):
        _signal_inside_a_weakref_callback()
        with pytest.raises(KeyboardInterrupt):
            children.run("quick", [sys.executable, "-c", "print('done')"])
    assert children.running == []
    assert (tmp_path / "quick.log").read_text().splitlines()[-1] == "done"


def test_without_a_signal_the_checks_pass_and_handlers_are_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    children = Children(tmp_path)
    with _terminate_as_interrupt(children):
        children.check()
        children.run("quick", [sys.executable, "-c", "print('done')"])
    assert children.signalled is None
    assert signal.getsignal(signal.SIGTERM) is before
