"""Where an image lies in a fixed-size network input: the one letterbox / crop geometry.

An (h, w) image brought to an (H, W) input by ``fit``:

- ``"resize"``: stretched to (H, W); it fills the input.
- ``"pad"``: scaled by ``s = min(H / h, W / w)`` to ``(ch, cw) = (max(round(h s), 1),
  max(round(w s), 1))`` (aspect kept), centred; the rest of the input is padding.
- ``"crop"``: scaled by ``s = max(H / h, W / w)`` to at least (H, W) (same rounding, then
  ``max(ch, H)``, ``max(cw, W)``); the input is the centred (H, W) window of it.

In both letterbox fits the scaled image starts at ``top = -((ch - H) // 2)``, ``left =
-((cw - W) // 2)`` in input pixels: >= 0 for "pad" (padding above / left), <= 0 for "crop"
(the window cuts into the image). The training fit (``deal_ros.data.torch_dataset.fit_sample``),
the inference letterbox (``deal_ros.infer.preprocess``) and the way back to the image
(``deal_ros.infer.postprocess.unplace``, ``deal_ros.instance.evaluate.to_original``) all read
it from :func:`placement`. Plain Python: no numpy, torch or ROS.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FITS", "Placement", "placement"]

FITS = ("resize", "crop", "pad")


@dataclass(frozen=True)
class Placement:
    """Where an (h, w) ``image`` lies in the network input: scaled to ``height`` x ``width``,
    its top-left pixel at input row ``top``, column ``left`` (the whole input for "resize";
    negative where a crop window cuts the image)."""

    image: tuple[int, int]
    top: int
    left: int
    height: int
    width: int


def placement(image_hw: tuple[int, int], size: tuple[int, int], fit: str) -> Placement:
    """The :class:`Placement` of an ``image_hw`` image in a ``size`` input under ``fit``
    (module docstring); an image already at ``size`` is placed as is."""
    if fit not in FITS:
        raise ValueError(f"placement: fit={fit!r}: choose one of {', '.join(FITS)}")
    h, w = int(image_hw[0]), int(image_hw[1])
    H, W = int(size[0]), int(size[1])
    if fit == "resize" or (h, w) == (H, W):
        return Placement((h, w), 0, 0, H, W)
    s = max(H / h, W / w) if fit == "crop" else min(H / h, W / w)
    ch, cw = max(round(h * s), 1), max(round(w * s), 1)
    if fit == "crop":
        ch, cw = max(ch, H), max(cw, W)
    return Placement((h, w), -((ch - H) // 2), -((cw - W) // 2), ch, cw)
