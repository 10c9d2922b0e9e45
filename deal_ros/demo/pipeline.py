"""``run_demo(settings)``: the phases of ``deal demo``, in order, each timed and logged.

    record   demo camera + deal-recorder (real processes, private ROS domain): one episode/class
    train    deal train --config demo (CAM net + DEAL, CPU) on those episodes
    pseudo   deal pseudo: CAM -> threshold -> CRF labels for the recorded frames
    eval     deal eval on held-out generated scenes (CAM and pseudo-label mIoU)
    export   deal export: the ONNX bundle in <out>/model
    segment  deal-segmenter on a replay of the episodes; outputs collected and checked
    report   scores against the generator's ground truth, report.md, metrics.json, pictures

Every ``deal`` step runs as a child ``python -m deal_ros.cli ...`` (the CLI's own code path),
every node as a child process; all of them are stopped on exit, on Ctrl-C and on failure. A
failing phase is one line naming the phase and its log (``<out>/logs/``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deal_ros import __version__
from deal_ros.demo.children import ChildError, Children
from deal_ros.demo.phases import PHASE_LOGS, PHASES
from deal_ros.demo.rosenv import ros_environment
from deal_ros.demo.run_state import DemoState
from deal_ros.demo.settings import DemoSettings
from deal_ros.errors import DealError

__all__ = ["PHASES", "DemoRun", "run_demo"]

MARKER = ".deal-demo"
# CAMs of one scale and its flip for the pseudo labels (our choice for the demo: the preset's
# three scales cost 4x the CPU time on small images)
LABELING = ("scales=[1.0]", "flip=true")
OWNED = (
    "report.md",
    "metrics.json",
    "model",
    "overlays",
    "cams",
    "masks",
    "training",
    "logs",
    "work",
    "segmenter_outputs.png",
    "heldout_scenes.png",
)


def _prepare_out(out: Path) -> None:
    """Create ``out`` or clear a previous demo's files from it (nothing else is touched)."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()) and not (out / MARKER).is_file():
        raise DealError(
            f"--out {out}: folder exists, is not empty and holds no previous demo ({MARKER}); "
            "choose another folder"
        )
    for name in OWNED:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    (out / MARKER).write_text(f"deal demo output, deal_ros {__version__}\n")


@contextlib.contextmanager
def _terminate_as_interrupt(children: Children) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end the demo like Ctrl-C (children stopped, one line).

    SIGINT is installed explicitly too: a process started with SIGINT ignored (a background
    job of a non-interactive shell, some supervisors) would otherwise never see Ctrl-C, run
    every phase to the end and leave its children running when it is finally killed. The
    signal is also recorded in ``children.signalled``, so an interrupt that Python swallowed
    (raised inside a weakref callback) is raised again at the next check."""

    def handler(signum, _frame):
        children.signalled = signum
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class DemoRun(DemoState):
    """One run of the demo (see the module docstring); what it holds: :class:`DemoState`."""

    def __init__(self, settings: DemoSettings, echo: bool | None = None) -> None:
        super().__init__(settings)
        self.echo = sys.stderr.isatty() if echo is None else echo
        self.children: Children | None = None
        self.client = None

    # ------------------------------------------------------------------ output
    def say(self, line: str) -> None:
        print(line, flush=True)
        with contextlib.suppress(OSError), (self.logs / "demo.log").open("a") as f:
            f.write(line + "\n")

    def _log_traceback(self) -> None:
        with contextlib.suppress(OSError), (self.logs / "demo.log").open("a") as f:
            f.write(traceback.format_exc())

    def _logs_of(self, phase: str) -> str:
        logs = [self.logs / f"{n}.log" for n in PHASE_LOGS.get(phase, ())]
        logs = [p for p in logs if p.is_file()]
        return "; log: " + ", ".join(str(p) for p in logs) if logs else ""

    # ------------------------------------------------------------------ running
    def run(self) -> dict[str, Any]:
        """All phases; returns the metrics (also in ``<out>/metrics.json``)."""
        _prepare_out(self.out)
        self.logs.mkdir(parents=True, exist_ok=True)
        for note in ros_environment(os.environ, self.domain):
            self.say(f"note: {note}")
        if self.echo:  # children's progress bars come through a pipe: tell them the width
            os.environ.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
        self.children = Children(self.logs)
        self.say(self._headline())
        started = time.monotonic()
        try:
            with _terminate_as_interrupt(self.children):
                for index, name in enumerate(PHASES):
                    self._phase(index, name, getattr(self, f"_{name}"))
        finally:
            self._cleanup()
        self.timing["total"] = time.monotonic() - started
        self._finish()
        return self.metrics

    def _headline(self) -> str:
        s = self.s
        return (
            f"deal demo{' --quick' if s.quick else ''}: {', '.join(s.classes)}; {s.frames} frames "
            f"each at {s.size_text} {s.rate_hz:g} Hz; {s.steps} training steps on the CPU; "
            f"ROS domain {self.domain} -> {self.out}"
        )

    def _phase(self, index: int, name: str, fn: Callable[[], str]) -> None:
        tag = f"[{index + 1}/{len(PHASES)}] {name:<8}"
        self.say(f"{tag} {PHASES[name]}")
        t0 = time.monotonic()
        try:
            detail = fn()
            self.children.check_signalled()
        except KeyboardInterrupt:
            self.say(
                f"{tag} interrupted after {time.monotonic() - t0:.1f} s: stopping the "
                f"child processes; partial output in {self.out}"
            )
            raise
        except ChildError as exc:
            self._log_traceback()
            raise DealError(f"phase '{name}' failed: {exc}") from None
        except DealError as exc:
            self._log_traceback()
            raise DealError(f"phase '{name}' failed: {exc}{self._logs_of(name)}") from None
        except Exception as exc:
            self._log_traceback()
            raise DealError(
                f"phase '{name}' failed: {type(exc).__name__}: {exc} (traceback in "
                f"{self.logs / 'demo.log'})"
            ) from None
        self.timing[name] = time.monotonic() - t0
        self.say(f"{tag} done in {self.timing[name]:.1f} s" + (f": {detail}" if detail else ""))

    def _cleanup(self) -> None:
        if self.children is not None:
            self.children.stop_all()
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None

    def _ros(self):
        if self.client is None:
            from deal_ros.demo.client import DemoClient

            self.client = DemoClient(self.children)
        return self.client

    def _deal(self, name: str, *args: str) -> Path:
        """``deal <args>`` as a child (the CLI's code path); returns its log. Progress bars
        are echoed on a terminal and left out of the logs otherwise."""
        quiet = not self.echo and args[0] in ("train", "pseudo", "eval")
        cmd = [
            sys.executable,
            "-m",
            "deal_ros.cli",
            *args[:1],
            *(["--no-progress"] * quiet),
            *args[1:],
        ]
        return self.children.run(name, cmd, echo=self.echo)

    # ------------------------------------------------------------------ phases
    def _record(self) -> str:
        from deal_ros.demo.record import record_episodes

        rec = record_episodes(
            self.s, self.children, self._ros(), self.episodes_dir, self.gt_dir, self.say
        )
        self.metrics["recording"] = rec
        return f"{rec['frames_recorded']} frames recorded, {rec['frames_dropped']} dropped"

    def _train(self) -> str:
        s = self.s
        h, w = s.input_size
        self._deal(
            "train",
            "train",
            "--config",
            "demo",
            f"data={self.episodes_dir}",
            f"run={self.run_dir}",
            "make_pseudo=false",
            f"train.max_steps={s.steps}",
            f"train.batch_size={s.batch_size}",
            f"input.height={h}",
            f"input.width={w}",
            f"seed={s.seed}",
        )
        records = _read_jsonl(self.run_dir / "metrics.jsonl")
        steps = [r for r in records if r.get("stage") == "cam" and "loss" in r]
        last = steps[-1] if steps else {}
        speeds = [r["images_per_s"] for r in steps if r.get("images_per_s")]
        self.metrics["train"] = {
            "steps": int(last.get("step", 0)),
            "images_per_s": sum(speeds) / len(speeds) if speeds else 0.0,
            "final_loss": last.get("loss"),
            "final_cls": last.get("cls"),
            "final_deal": last.get("deal"),
        }
        t = self.metrics["train"]
        return f"{t['steps']} steps, {t['images_per_s']:.1f} images/s"

    def _pseudo(self) -> str:
        self._deal("pseudo", "pseudo", f"run={self.run_dir}", *LABELING)
        n = len(list((self.run_dir / "pseudo").glob("*.png")))
        return f"{n} pseudo label PNGs"

    def _eval(self) -> str:
        s = self.s
        spec = s.heldout_spec
        out = self.work / "eval.json"
        self._deal(
            "eval",
            "eval",
            f"run={self.run_dir}",
            f"data={spec}",
            "what=cam",
            f"out={out}",
            *LABELING,
        )
        cam = json.loads(out.read_text())["cam"]
        self.metrics["eval"] = {"data": spec, **cam}
        return (
            f"{s.heldout} held-out scenes: CAM mIoU {100 * cam['cam_best_miou']:.1f} %, "
            f"pseudo-label mIoU {100 * cam['pseudo_miou']:.1f} %"
        )

    def _export(self) -> str:
        self._deal("export", "export", f"run={self.run_dir}", f"out={self.bundle}", "engine=false")
        from deal_ros.infer.bundle import read_bundle

        bundle = read_bundle(self.bundle)
        parity = (bundle.export or {}).get("parity") or {}
        self.metrics["export"] = {
            "model_bytes": bundle.model_path.stat().st_size,
            "input_size": [bundle.input.height, bundle.input.width],
            "classes": list(bundle.classes),
            "parity_max_abs": parity.get("max_abs"),
        }
        return f"{self.bundle} ({bundle.model_path.stat().st_size / 1e6:.1f} MB ONNX)"

    def _segment(self) -> str:
        from deal_ros.demo.segment import segment_replay

        dirs = [Path(e["path"]) for e in self.metrics["recording"]["episodes"]]
        result = segment_replay(
            self.bundle, dirs, self.children, self._ros(), self.out, self.s.save_per_episode
        )
        self.segment_result = result
        summary = result.summary
        self.metrics["segmenter"] = summary
        if not summary["stamps_matched"]:
            self.problems.append(
                f"{summary['outputs_unmatched']} segmenter outputs carry the stamp or frame_id "
                "of no input frame"
            )
        lat = summary.get("latency_ms") or {}
        return (
            f"{summary['frames_with_all_outputs']}/{summary['frames_sent']} frames with all "
            f"outputs, stamps matched: {summary['stamps_matched']}, latency p50 "
            f"{lat.get('p50', float('nan')):.1f} ms"
        )

    def _report(self) -> str:
        from deal_ros.demo.summary import assemble_report

        assemble_report(self)
        return f"{self.out / 'report.md'}, {self.out / 'metrics.json'}"

    # ------------------------------------------------------------------ end
    def _finish(self) -> None:
        from deal_ros.demo.summary import final_summary, rewrite_timing

        rewrite_timing(self)
        for line in final_summary(self):
            self.say(line)
        if self.problems:  # work/ stays for a look
            raise DealError("; ".join(self.problems) + f"; episodes and run in {self.work}")
        if not self.s.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def run_demo(settings: DemoSettings, echo: bool | None = None) -> dict[str, Any]:
    """Run ``deal demo`` with ``settings``; returns the metrics."""
    return DemoRun(settings, echo).run()
