"""The class colours every overlay, mask image and marker uses (one palette, one place)."""

from __future__ import annotations

# Distinct colours (Sasha Trubetskoy's list), background black: our choice of default palette.
_PALETTE_BASE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """``num_classes + 1`` RGB rows: black background, then distinct colours (cycled)."""
    rows = [(0, 0, 0)]
    for k in range(num_classes):
        r, g, b = _PALETTE_BASE[k % len(_PALETTE_BASE)]
        shade = 1.0 - 0.35 * ((k // len(_PALETTE_BASE)) % 2)  # darker on the second lap
        rows.append((int(r * shade), int(g * shade), int(b * shade)))
    return rows
