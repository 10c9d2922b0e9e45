"""The demo's child processes: each with a log file, all stopped on exit, Ctrl-C and failure.

Children run in sessions of their own, so a Ctrl-C at the terminal reaches the demo only and
the demo stops them in order (SIGINT, then SIGTERM, then SIGKILL, each after a grace period).
A child that fails is reported as ONE line naming it, its last output line and its log file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deal_ros.errors import DealError

__all__ = ["Child", "ChildError", "Children", "last_line"]


class ChildError(DealError):
    """A child process failed or died; the message names it and its log."""


def last_line(log: Path, default: str = "") -> str:
    """The last non-empty line of ``log`` (the final state of a ``\\r`` progress bar)."""
    try:
        text = log.read_bytes()[-20000:].decode("utf-8", "replace")
    except OSError:
        return default
    for line in reversed(text.splitlines()):
        line = line.split("\r")[-1].strip()
        if line:
            return line[:300]
    return default


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self, what: str = "exited") -> str:
        code = self.proc.poll()
        detail = last_line(self.log, "no output")
        return f"{self.name} {what} (exit code {code}): {detail}; log: {self.log}"


class Children:
    """Start, watch and stop the demo's processes (see the module docstring)."""

    def __init__(self, logs_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.logs_dir = Path(logs_dir)
        self.env = dict(os.environ if env is None else env)
        self.running: list[Child] = []
        self.signalled: int | None = None  # set by the demo's signal handler

    def log_path(self, name: str) -> Path:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return self.logs_dir / f"{name}.log"

    def start(self, name: str, cmd: Sequence[str]) -> Child:
        """Start a long-running child (a node); output goes to ``logs/<name>.log``."""
        log = self.log_path(name)
        with log.open("wb") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                list(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self.running.append(child)
        return child

    def check(self) -> None:
        """Raise :class:`ChildError` when a started child is no longer running, and
        ``KeyboardInterrupt`` once a signal arrived (see :meth:`check_signalled`)."""
        self.check_signalled()
        for child in self.running:
            if not child.alive:
                raise ChildError(child.failure("exited unexpectedly"))

    def check_signalled(self) -> None:
        """Raise ``KeyboardInterrupt`` when the demo was signalled. The handler raises it
        too, but Python swallows an exception raised while it runs a weakref callback or a
        ``__del__`` (it prints "Exception ignored in ...") and the demo would carry on: the
        flag makes the next check raise it again."""
        if self.signalled is not None:
            raise KeyboardInterrupt

    def run(self, name: str, cmd: Sequence[str], echo: bool = False) -> Path:
        """Run ``cmd`` to completion; its output goes to ``logs/<name>.log`` and, with
        ``echo``, to this process's stderr as it comes (progress bars included). A non-zero
        exit raises :class:`ChildError`."""
        log = self.log_path(name)
        with log.open("wb") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                list(cmd),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
            child = Child(name, proc, log)
            self.running.append(child)
            try:
                self._pump(proc, out, echo)
                proc.wait()
            finally:
                self.stop(child)
        self.check_signalled()
        if proc.returncode != 0:
            raise ChildError(child.failure("failed"))
        return log

    @staticmethod
    def _pump(proc: subprocess.Popen, out, echo: bool) -> None:
        fd = proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out.write(chunk)
            out.flush()
            if echo:
                sys.stderr.buffer.write(chunk)
                sys.stderr.buffer.flush()
        proc.stdout.close()

    def stop(self, child: Child, grace: float = 10.0) -> int | None:
        """Stop ``child`` (SIGINT, SIGTERM, SIGKILL; ``grace`` seconds for the first)."""
        proc = child.proc
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            _signal_group(proc, sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()
        if child in self.running:
            self.running.remove(child)
        return proc.poll()

    def stop_all(self) -> None:
        """Stop every child still running, newest first; a second Ctrl-C meanwhile kills the
        rest at once."""
        try:
            for child in reversed(list(self.running)):
                self.stop(child)
        except KeyboardInterrupt:
            self.kill_all()
            raise

    def kill_all(self) -> None:
        for child in list(self.running):
            _signal_group(child.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(5.0)
            self.running.remove(child)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the child's process group (its session: it and anything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
