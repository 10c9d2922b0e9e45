"""``deal infer model=models/mug input=./episodes/<id> out=./overlays``: offline inference.

The same runtime as the segmenter node (ONNX Runtime, no torch). Inputs: an episode or a
folder of episodes, ``bag:PATH`` (or a bag folder / .mcap file), an image folder, one image,
or any dataset spec (``scene:n=10``). Writes overlay / mask / CAM PNGs and results.jsonl.
An instance bundle (``deal export`` of a box run) writes instance overlays, instance-id masks
and per-frame instances (class, score, box) in results.jsonl; with ``save=...,cloud`` one 3-D
object per instance.
"""

from __future__ import annotations

import argparse
import sys

from deal_ros.commands._keyvalue import Key, keys_epilog, parse_bool, parse_keyvalues


def _save(text: str) -> tuple[str, ...]:
    from deal_ros.infer.offline import SAVE_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in SAVE_KINDS]
    if bad or not kinds:
        raise ValueError(f"expected a comma list of {', '.join(SAVE_KINDS)}, got '{text}'")
    return kinds


KEYS: dict[str, Key] = {
    "model": Key("model bundle folder (deal export)", required=True),
    "input": Key("episode(s) folder, bag, image folder, image file or dataset spec",
                 required=True),
    "out": Key("output folder for PNGs and results.jsonl", required=True),
    "providers": Key("auto (TensorRT > CUDA > CPU) | tensorrt | cuda | cpu, comma lists too",
                     str, "auto"),
    "fp16": Key("TensorRT fp16", parse_bool, False),
    "threads": Key("ONNX Runtime intra-op threads (0: its default)", int, 0),
    "save": Key("what to write: overlay,mask,cam (+ cloud: PLY and 3-D objects in "
                "results.jsonl, needs depth); default overlay,mask,cam (instance bundles: "
                "overlay,mask; no cam; cloud gives one object per instance)", _save),
    "every": Key("use every n-th frame", int, 1),
    "limit": Key("at most this many frames (0: all)", int, 0),
    "cam_threshold": Key("background CAM score (default: the bundle's)", float),
    "score_threshold": Key("class presence score; instance bundles: candidate class "
                           "probability (default: the bundle's)", float),
    "nms_threshold": Key("instance bundles: NMS IoU (default: the bundle's)", float),
    "mask_threshold": Key("instance bundles: mask probability (default: the bundle's)", float),
    "max_detections": Key("instance bundles: instances per frame (default: the bundle's)", int),
    "rgb_topic": Key("bags: the image topic"),
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("settings", nargs="*", metavar="key=value", help="see below")
    parser.epilog = (
        keys_epilog(KEYS)
        + "\n\nexamples:\n  deal infer model=models/mug input=./episodes/<id> out=./overlays"
        + "\n  deal infer model=models/box input=scene:n=3 out=./instances   # instance bundle"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deal_ros.infer.offline import iter_frames, resolve_source, run_offline
    from deal_ros.infer.runtime import Runtime

    opts = parse_keyvalues(args.settings, KEYS, "infer")
    runtime = Runtime(
        opts["model"],
        providers=opts["providers"],
        fp16=opts["fp16"],
        threads=opts["threads"],
        cam_threshold=opts["cam_threshold"],
        score_threshold=opts["score_threshold"],
        nms_threshold=opts["nms_threshold"],
        mask_threshold=opts["mask_threshold"],
        max_detections=opts["max_detections"],
    )
    print(f"model: {runtime.describe()}")
    options = {"rgb_topic": opts["rgb_topic"]} if opts["rgb_topic"] else {}
    source = resolve_source(opts["input"])
    count, frames = iter_frames(source, opts["every"], opts["limit"], options)
    with tqdm(total=count, unit="frame", file=sys.stderr, disable=None) as bar:
        summary = run_offline(runtime, frames, opts["out"], opts["save"], progress=bar)
    print(summary.line())
    return 0
