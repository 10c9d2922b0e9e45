"""``deal export run=runs/mug-001 out=models/mug``: a run folder -> a model bundle.

Writes model.onnx + model.yaml (parity-checked against torch, onnx.checker-validated) and, on a
machine with TensorRT, a cached engine. See docs/formats.md for the bundle layout. A box run
(config.yaml ``stage: box``) gives an instance bundle (``deal_ros.export.instance_bundle``).
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
    "score_threshold": Key("class presence score (default 0.5; box runs: candidate class "
                           "probability, default the run's infer.score_threshold)", float),
    "topk": Key("box runs: candidates per image in the graph", int, 100),
    "nms_threshold": Key("box runs: NMS IoU (default: the run's infer.nms_threshold)", float),
    "max_detections": Key("box runs: instances per image (default: the run's)", int),
    "mask_threshold": Key("box runs: mask probability (default: the run's)", float),
    "box_margin": Key("box runs: masks zeroed outside their box widened by this many input "
                      "pixels, -1 no crop (default: the run's infer.box_margin)", float),
}  # fmt: skip
SEMANTIC_ONLY = ("cam_threshold",)
BOX_ONLY = ("topk", "nms_threshold", "max_detections", "mask_threshold", "box_margin")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("settings", nargs="*", metavar="key=value", help="see below")
    parser.epilog = (
        keys_epilog(KEYS)
        + "\n\nexamples:\n  deal export run=runs/mug-001 out=models/mug"
        + "\n  deal export run=runs/box-001 out=models/box     # a box run: instance bundle"
    )


def _given(settings: list[str], names: tuple[str, ...]) -> list[str]:
    keys = {s.partition("=")[0].strip().lstrip("-").replace("-", "_") for s in settings}
    return [n for n in names if n in keys]


def _export_box(opts: dict, settings: list[str]):
    from deal_ros.errors import DealError
    from deal_ros.export.instance_bundle import export_instance_run

    bad = _given(settings, SEMANTIC_ONLY)
    bad += ["stage"] if opts["stage"] != "auto" else []
    bad += ["dynamic_size"] if opts["dynamic_size"] else []
    if bad:
        raise DealError(
            f"export: {opts['run']} is a box (instance) run: {', '.join(bad)} applies to "
            "CAM/seg runs only"
        )
    return export_instance_run(
        opts["run"],
        opts["out"],
        input_size=opts["input"],
        topk=opts["topk"],
        score_threshold=opts["score_threshold"],
        nms_threshold=opts["nms_threshold"],
        max_detections=opts["max_detections"],
        mask_threshold=opts["mask_threshold"],
        box_margin=opts["box_margin"],
        **_common(opts),
    )


def _common(opts: dict) -> dict:
    """The keywords both bundle kinds take: parity check, ONNX opset, TensorRT engine, log."""
    return {
        "parity_count": opts["parity_images"],
        "tensorrt": opts["engine"],
        "fp16": opts["fp16"],
        "opset": opts["opset"],
        "atol": opts["atol"],
        "log": print,
    }


def run(args: argparse.Namespace) -> int:
    opts = parse_keyvalues(args.settings, KEYS, "export")
    from deal_ros.commands._methods import BOX, run_method

    if run_method(opts["run"]) == BOX:
        result = _export_box(opts, args.settings)
    else:
        result = _export_semantic(opts, args.settings)
    if result.engine:
        engine = f"TensorRT engine in {result.engine}"
    elif opts["engine"] is False:
        engine = "no TensorRT engine (engine=false)"
    else:
        engine = "no TensorRT engine (no TensorRT provider or trtexec on this machine)"
    print(f"bundle {result.path} done: max abs diff {result.parity.worst:.2e}; {engine}")
    return 0


def _export_semantic(opts: dict, settings: list[str]):
    from deal_ros.errors import DealError
    from deal_ros.export.bundle import export_run  # torch: imported only when exporting

    bad = _given(settings, BOX_ONLY)
    if bad:
        raise DealError(f"export: {', '.join(bad)} applies to box (instance) runs only")
    extra = {}
    if opts["cam_threshold"] is not None:
        extra["cam_threshold"] = opts["cam_threshold"]
    if opts["score_threshold"] is not None:
        extra["score_threshold"] = opts["score_threshold"]
    if opts["input"] is not None:
        extra["input_size"] = opts["input"]
    return export_run(
        opts["run"],
        opts["out"],
        stage=opts["stage"],
        dynamic_size=opts["dynamic_size"],
        **_common(opts),
        **extra,
    )
