"""Read a run folder back: ``load_run(run_dir) -> Run`` (used by pseudo, eval and export).

    run = load_run("runs/mug-001")
    run.classes                 # ["mug"]: foreground classes, id = index + 1 (0 = background)
    run.input_size              # (H, W) the network input size
    run.mean, run.std           # input normalisation (on 0..1 RGB) - already inside the nets
    net = run.cam_net()         # CAMNet in eval mode with the trained weights (CPU)
    seg = run.seg_net()         # SegNet (K + 1 outputs) if the seg stage ran, else DealError
    run.config                  # TrainConfig of the CAM stage (config.yaml)
    run.seg_config              # TrainConfig of the seg stage, or None

Both nets take RGB in [0, 1] (B, 3, H, W): the input normalisation is part of the module.
``cam_net()(x)`` returns ``{"logits": (B, K), "cam_logits": (B, K, h, w)}``;
``deal_ros.nets.CAMExport(run.cam_net())`` gives the (scores, cams) export view.
Every failure (no folder, no config, missing weights, weights that do not fit) is one
``DealError`` line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from deal_ros.engine.runfolder import read_classes, read_yaml
from deal_ros.errors import DealError
from deal_ros.nets.cam_net import CAMNet
from deal_ros.nets.seg_net import SegNet
from deal_ros.nets.weights import load_weights
from deal_ros.train.config import ConfigError, TrainConfig, config_from_file_dict

__all__ = ["Run", "load_run"]


@dataclass
class Run:
    """A trained run folder (see the module docstring)."""

    path: Path
    config: TrainConfig
    classes: list[str]
    seg_config: TrainConfig | None = None
    meta: dict = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.config.input.height, self.config.input.width)

    @property
    def mean(self) -> list[float] | None:
        return self.config.input.mean

    @property
    def std(self) -> list[float] | None:
        return self.config.input.std

    @property
    def num_classes(self) -> int:
        """Foreground classes K (the CAM net's outputs; the segmenter has K + 1)."""
        return len(self.classes)

    @property
    def cam_weights(self) -> Path:
        return self.path / "cam_net.safetensors"

    @property
    def seg_weights(self) -> Path:
        return self.path / "seg_net.safetensors"

    @property
    def has_cam(self) -> bool:
        return self.config.stage == "cam" and self.cam_weights.is_file()

    @property
    def has_seg(self) -> bool:
        return self.seg_config is not None and self.seg_weights.is_file()

    @property
    def pseudo_dir(self) -> Path:
        return self.path / "pseudo"

    def cam_net(self, device: str | torch.device = "cpu") -> CAMNet:
        """The trained CAM net, eval mode."""
        from deal_ros.train.stages.cam import build_cam_net

        if self.config.stage != "cam":
            raise DealError(f"run {self.path}: holds no CAM net (stage {self.config.stage})")
        if not self.cam_weights.is_file():
            raise DealError(
                f"run {self.path}: {self.cam_weights.name} not found (training did not finish? "
                f"resume it with: deal train resume={self.path})"
            )
        net = build_cam_net(self.config.model, self.num_classes, pretrained=False)
        load_weights(net, self.cam_weights)
        return net.to(device).eval()

    def seg_net(self, device: str | torch.device = "cpu") -> SegNet:
        """The trained segmenter (K + 1 classes, background first), eval mode."""
        from deal_ros.train.stages.seg import build_seg_net

        if self.seg_config is None or not self.seg_weights.is_file():
            raise DealError(
                f"run {self.path}: no segmenter (seg_net.safetensors); train one with "
                f"deal train --config seg pseudo={self.pseudo_dir}"
            )
        net = build_seg_net(self.seg_config.model, self.num_classes + 1, pretrained=False)
        load_weights(net, self.seg_weights)
        return net.to(device).eval()


def _config(path: Path) -> tuple[TrainConfig, dict]:
    data = read_yaml(path, "run config")
    try:
        return config_from_file_dict(data, where=str(path)), dict(data.get("meta") or {})
    except ConfigError as exc:
        raise DealError(f"run config {path}: {exc}") from None


def load_run(run_dir: str | Path) -> Run:
    """Open a run folder written by ``deal train`` (see the module docstring)."""
    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise DealError(f"run {path}: no such folder")
    if not (path / "config.yaml").is_file():
        raise DealError(f"run {path}: config.yaml not found (not a deal_ros run folder?)")
    config, meta = _config(path / "config.yaml")
    classes = read_classes(path)
    seg_config = None
    if (path / "config_seg.yaml").is_file():
        seg_config, _ = _config(path / "config_seg.yaml")
    elif config.stage == "seg":
        seg_config = config
    return Run(path=path, config=config, classes=classes, seg_config=seg_config, meta=meta)
