"""Optional adapter: any timm model (``features_only=True``) behind the ``Backbone`` contract.

timm is not a dependency: it is imported lazily here, and only when a name starts with
"timm:". Weights come from a local file only (``pretrained`` = path), never from a hub.
The last four feature levels become c2..c5 (timm's reductions are reported in ``strides``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from deal_ros.errors import DealError
from deal_ros.nets.backbone import LEVELS, Backbone, check_output_stride


class TimmBackbone(Backbone):
    """``timm.create_model(name, features_only=True, output_stride=...)`` as c2..c5."""

    def __init__(
        self,
        model_name: str,
        output_stride: int = 32,
        pretrained: str | Path | None = None,
        **kw: object,
    ) -> None:
        super().__init__()
        try:
            import timm
        except ImportError as exc:
            raise DealError(f"backbone 'timm:{model_name}': timm is not installed") from exc
        self.name = f"timm:{model_name}"
        self.output_stride = check_output_stride(self.name, output_stride)
        kwargs: dict[str, object] = {"features_only": True, "pretrained": False, **kw}
        if output_stride != 32:
            kwargs["output_stride"] = output_stride
        if pretrained is not None:
            path = Path(str(pretrained)).expanduser()
            if not path.is_file():
                raise DealError(f"backbone '{self.name}': pretrained file '{path}' not found")
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
            kwargs["pretrained"] = True
        self.model = timm.create_model(model_name, **kwargs)
        info = self.model.feature_info
        n = len(info.channels())
        self._indices = list(range(max(0, n - 4), n))
        levels = LEVELS[-len(self._indices) :]
        self.channels = {lv: info.channels()[i] for lv, i in zip(levels, self._indices)}
        self.strides = {lv: info.reduction()[i] for lv, i in zip(levels, self._indices)}
        cfg = getattr(self.model, "pretrained_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", self.mean))
        self.std = tuple(cfg.get("std", self.std))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.model(x)
        levels = LEVELS[-len(self._indices) :]
        return {lv: feats[i] for lv, i in zip(levels, self._indices)}
