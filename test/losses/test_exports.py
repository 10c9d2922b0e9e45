"""The public names of ``deal_ros.losses``: every ``__all__`` entry resolves, FCOS is exported."""

from __future__ import annotations

import deal_ros.losses as losses
from deal_ros.losses import fcos


def test_all_names_resolve_and_fcos_is_exported():
    assert all(hasattr(losses, name) for name in losses.__all__)
    for name in ("sigmoid_focal_loss", "giou_loss", "centerness_loss", "centerness_target"):
        assert name in losses.__all__ and getattr(losses, name) is getattr(fcos, name)
    assert "DepthNoise" not in losses.__all__  # a sensor model: deal_ros.data.depth_noise
