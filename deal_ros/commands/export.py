"""``deal export run=runs/mug-001 out=models/mug``: a run folder -> a model bundle.

Writes model.onnx + model.yaml (parity-checked against torch, onnx.checker-validated) and, on a
machine with TensorRT, a cached engine. See docs/formats.md for the bundle layout.
"""

from __future__ import annotations

import argparse

from deal_ros.commands._keyvalue import Key, keys_epilog, parse_bool, parse_keyvalues, parse_size

ENGINE_CHOICES = {"auto": None, "true": True, "yes": True, "false": False, "no": False}


def _engine(text: str) -> bool | None:
    if text.lower() not in ENGINE_CHOICES:
        raise ValueError(f"expected auto, true or false, got '{text}'")
    return ENGINE_CHOICES[text.lower()]


def _stage(text: str) -> str:
    if text not in ("auto", "cam", "seg"):
        raise ValueError(f"expected auto, cam or seg, got '{text}'")
    return text


KEYS: dict[str, Key] = {
    "run": Key("run folder written by deal train", required=True),
    "out": Key("bundle folder to write (created; an existing bundle is replaced)", required=True),
    "stage": Key("auto (with the stage-2 segmenter when the run has one) | cam | seg",
                 _stage, "auto"),
    "input": Key("network input HxW (default: the run's input size)", parse_size),
    "dynamic_size": Key("export with dynamic height/width", parse_bool, False),
    "engine": Key("TensorRT engine: auto (when available) | true | false", _engine, "auto"),
    "fp16": Key("TensorRT fp16 engine", parse_bool, False),
    "opset": Key("ONNX opset", int, 17),
    "parity_images": Key("frames for the torch/ONNX parity check", int, 4),
    "atol": Key("parity tolerance (absolute)", float, 1e-3),
    "cam_threshold": Key("background CAM score (default: the run's labeling.bg_threshold)", float),
    "score_threshold": Key("class presence score", float, 0.5),
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("settings", nargs="*", metavar="key=value", help="see below")
    parser.epilog = (
        keys_epilog(KEYS) + "\n\nexample:\n  deal export run=runs/mug-001 out=models/mug"
    )


def run(args: argparse.Namespace) -> int:
    opts = parse_keyvalues(args.settings, KEYS, "export")
    from deal_ros.export.bundle import export_run  # torch: imported only when exporting

    extra = {}
    if opts["cam_threshold"] is not None:
        extra["cam_threshold"] = opts["cam_threshold"]
    if opts["input"] is not None:
        extra["input_size"] = opts["input"]
    result = export_run(
        opts["run"],
        opts["out"],
        stage=opts["stage"],
        parity_count=opts["parity_images"],
        dynamic_size=opts["dynamic_size"],
        tensorrt=opts["engine"],
        fp16=opts["fp16"],
        opset=opts["opset"],
        atol=opts["atol"],
        score_threshold=opts["score_threshold"],
        log=print,
        **extra,
    )
    if result.engine:
        engine = f"TensorRT engine in {result.engine}"
    elif opts["engine"] is False:
        engine = "no TensorRT engine (engine=false)"
    else:
        engine = "no TensorRT engine (no TensorRT provider or trtexec on this machine)"
    print(f"bundle {result.path} done: max abs diff {result.parity.worst:.2e}; {engine}")
    return 0
