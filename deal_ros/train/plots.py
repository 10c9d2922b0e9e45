"""Pictures for the run report, drawn with PIL only (no matplotlib needed: our choice, so the
report looks the same on every machine).

* ``line_chart``: one panel of training curves (x = step) with axes, ticks and a legend.
* ``heat``: a [0, 1] map -> RGB (a blue-cyan-yellow-red ramp).
* ``overlay_labels``: class ids over an image (PASCAL VOC palette, ignore = white hatch).
* ``grid``: tiles with captions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (id 0 black), (n, 3) uint8; 255 drawn white."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    pal[255] = (255, 255, 255)
    return pal


PALETTE = voc_palette()


def heat(x: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8."""
    stops = np.array([[0, 0, 64], [0, 90, 255], [0, 230, 230], [255, 230, 0], [230, 20, 0]],
                     np.float32)  # fmt: skip
    t = np.clip(x, 0, 1) * (len(stops) - 1)
    i = np.minimum(t.astype(np.int64), len(stops) - 2)
    f = (t - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def blend(rgb: np.ndarray, colour: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return (rgb.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).astype(
        np.uint8
    )


def overlay_labels(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Class colours over the image; background left as is; 255 (ignore) hatched white."""
    out = rgb.copy()
    fg = (labels > 0) & (labels != 255)
    out[fg] = blend(rgb[fg], PALETTE[labels[fg]], alpha)
    ys, xs = np.nonzero(labels == 255)
    hatch = (ys + xs) % 4 == 0
    out[ys[hatch], xs[hatch]] = 255
    return out


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # old Pillow
        return ImageFont.load_default()


def grid(
    tiles: Sequence[Sequence[np.ndarray]],
    captions: Sequence[str],
    scale: int = 1,
    classes: Sequence[str] = (),
) -> Image.Image:
    """Rows of equally sized RGB tiles, column captions on top, a class colour legend below."""
    h, w = tiles[0][0].shape[:2]
    h, w = h * scale, w * scale
    cols, pad, top = max(len(r) for r in tiles), 4, 18
    foot = 20 if classes else 0
    size = (cols * (w + pad) + pad, len(tiles) * (h + pad) + pad + top + foot)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    x = pad
    for k, name in enumerate(["background", *classes, "ignore"] if classes else []):
        colour = tuple(int(c) for c in PALETTE[255 if name == "ignore" else k])
        draw.rectangle([x, size[1] - 16, x + 12, size[1] - 4], fill=colour, outline=(0, 0, 0))
        draw.text((x + 16, size[1] - 17), name, fill=(0, 0, 0), font=_font())
        x += 24 + 7 * len(name)
    for c, text in enumerate(captions):
        draw.text((pad + c * (w + pad), 3), text, fill=(0, 0, 0), font=_font())
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            t = Image.fromarray(tile).resize((w, h), Image.NEAREST)
            img.paste(t, (pad + c * (w + pad), top + pad + r * (h + pad)))
    return img


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=mag * 10)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def line_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    size: tuple[int, int] = (560, 320),
    xlabel: str = "step",
    log_y: bool = False,
) -> Image.Image:
    """Curves {name: (xs, ys)} on one set of axes (PIL only)."""
    w, h = size
    left, right, top, bottom = 58, 12, 26, 36
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = _font()
    d.text((left, 6), title, fill=(0, 0, 0), font=_font(13))
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys)
           if y is not None and math.isfinite(y) and (y > 0 or not log_y)]  # fmt: skip
    if not pts:
        d.text((left, h // 2), "no data", fill=(120, 120, 120), font=font)
        return img
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(tf(p[1]) for p in pts), max(tf(p[1]) for p in pts)
    if x1 == x0:
        x1 = x0 + 1
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    margin = 0.05 * (y1 - y0)
    y0, y1 = y0 - margin, y1 + margin
    px = lambda x: left + (x - x0) / (x1 - x0) * (w - left - right)  # noqa: E731
    py = lambda y: h - bottom - (tf(y) - y0) / (y1 - y0) * (h - top - bottom)  # noqa: E731
    d.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    for t in _nice_ticks(y0, y1):
        if y0 <= t <= y1:
            yy = h - bottom - (t - y0) / (y1 - y0) * (h - top - bottom)
            d.line([left, yy, w - right, yy], fill=(230, 230, 230))
            label = f"{10**t:.3g}" if log_y else f"{t:.3g}"
            d.text((4, yy - 6), label, fill=(0, 0, 0), font=font)
    for t in _nice_ticks(x0, x1):
        if x0 <= t <= x1:
            xx = px(t)
            d.line([xx, h - bottom, xx, h - bottom + 4], fill=(0, 0, 0))
            d.text((xx - 10, h - bottom + 6), f"{t:g}", fill=(0, 0, 0), font=font)
    d.text(((w - left) // 2 + left - 12, h - 14), xlabel, fill=(0, 0, 0), font=font)
    for k, (name, (xs, ys)) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        line = [(px(x), py(y)) for x, y in zip(xs, ys)
                if y is not None and math.isfinite(y) and (y > 0 or not log_y)]  # fmt: skip
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        elif line:
            d.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2], fill=colour)
        ly = top + 6 + 14 * k
        d.rectangle([w - right - 114, ly - 1, w - right - 2, ly + 13], fill=(255, 255, 255))
        d.line([w - right - 110, ly + 6, w - right - 92, ly + 6], fill=colour, width=3)
        d.text((w - right - 88, ly), name, fill=(0, 0, 0), font=font)
    return img
