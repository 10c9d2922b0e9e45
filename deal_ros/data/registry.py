"""``build_dataset(spec)``: one entry point from a spec string to a :class:`SampleDataset`.

Spec strings (options as keywords, e.g. from ``deal train data=... key=value``):

=============================  ==========================================================
``scene:`` / ``scene:n=200,seed=1,size=240x320``  the synthetic benchmark (options inline
                                                   or as keywords)
``DIR`` / ``episodes:DIR``     a folder of episodes (sub-folders with ``episode.yaml``) or
                               one episode folder
``bag:PATH``                   any rosbag2 bag; ``rgb_topic=``, ``depth_topic=``,
                               ``labels=labels.yaml`` (see :mod:`.adapters.bag`)
``voc:DIR``                    PASCAL VOC layout (``split=``, ``depth=DIR``)
``coco:FILE.json``             COCO instances file (``images=DIR``, ``depth=DIR``)
``bop:DIR``                    BOP / HOPE layout (``split=``, ``names=``)
``folder:DIR``                 plain image folder (+ ``depth=DIR``), no labels
=============================  ==========================================================

Every adapter takes ``classes=`` (restrict and order the foreground classes; id = index + 1).
``pseudo_depth=MODEL.onnx`` (any source) fills missing depth with a monocular ONNX model
(:mod:`deal_ros.data.pseudo_depth`; its options in ``pseudo_depth_options={...}``).
Unknown options and missing files fail with one line naming them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deal_ros.data.adapters.base import DatasetError, check_options
from deal_ros.data.sample import SampleDataset

__all__ = ["ADAPTERS", "DatasetError", "build_dataset", "parse_spec", "register_adapter"]

#: kind -> "module:Class" (imported when used, so rosbags is never imported for VOC, etc.)
ADAPTERS: dict[str, str | Callable[..., SampleDataset]] = {
    "scene": "deal_ros.data.adapters.scene:SceneDataset",
    "episodes": "deal_ros.data.adapters.episodes:EpisodesDataset",
    "episode": "deal_ros.data.adapters.episodes:EpisodesDataset",
    "bag": "deal_ros.data.adapters.bag:BagDataset",
    "voc": "deal_ros.data.adapters.voc:VOCDataset",
    "coco": "deal_ros.data.adapters.coco:COCODataset",
    "bop": "deal_ros.data.adapters.bop:BOPDataset",
    "folder": "deal_ros.data.adapters.folder:FolderDataset",
}
_INLINE_OPTIONS = ("scene",)


def register_adapter(kind: str, factory: Callable[..., SampleDataset] | str) -> None:
    """Add (or replace) a source kind: ``factory(path, classes=..., **opts)``."""
    ADAPTERS[kind] = factory


def _factory(kind: str) -> Callable[..., SampleDataset]:
    target = ADAPTERS[kind]
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _inline_options(text: str, spec: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise DatasetError(f"dataset spec {spec!r}: expected key=value, got {part!r}")
        opts[key.strip()] = value.strip()
    return opts


def parse_spec(spec: str | Path) -> tuple[str, str | None, dict[str, str]]:
    """``spec`` -> ``(kind, path or None, inline options)``; a bare path is an episode folder
    or a folder of episodes."""
    text = str(spec).strip()
    if text == "scene":
        text = "scene:"
    kind, sep, rest = text.partition(":")
    if sep and kind in ADAPTERS:
        if kind in _INLINE_OPTIONS:
            return kind, None, _inline_options(rest, text)
        if not rest:
            raise DatasetError(f"dataset spec {text!r}: no path after '{kind}:'")
        return kind, rest, {}
    path = Path(text).expanduser()
    if not text:
        raise DatasetError("dataset spec is empty")
    if not path.exists():
        raise DatasetError(
            f"dataset {text!r}: no such file or directory (sources: a folder of episodes, or "
            + ", ".join(f"{k}:" for k in ADAPTERS if k != "episode")
            + ")"
        )
    if path.is_dir() and ((path / "episode.yaml").is_file() or any(path.glob("*/episode.yaml"))):
        return "episodes", text, {}
    raise DatasetError(
        f"dataset {text!r}: no episode.yaml in it or its sub-folders; for other sources use a "
        "prefix: "
        + ", ".join(f"{k}:PATH" for k in ("bag", "voc", "coco", "bop", "folder"))
        + " or scene:"
    )


def build_dataset(
    spec: str | Path, classes: Sequence[str] | None = None, **opts: Any
) -> SampleDataset:
    """The dataset named by ``spec`` (see the module docstring); ``opts`` go to its adapter."""
    kind, path, inline = parse_spec(spec)
    opts = {**inline, **opts}
    pseudo = opts.pop("pseudo_depth", None)
    pseudo_opts = opts.pop("pseudo_depth_options", None) or {}
    factory = _factory(kind)
    check_options(factory, opts, f"dataset {str(spec)!r}")
    dataset = factory(path, classes=classes, **opts)
    if pseudo:
        from deal_ros.data.pseudo_depth import PseudoDepthDataset

        dataset = PseudoDepthDataset(dataset, pseudo, **pseudo_opts)
    return dataset
