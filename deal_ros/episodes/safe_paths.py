"""Writing into an episode folder never goes through a symbolic link that leads outside it.

An episode folder is plain files a person may move, copy or link together; a link inside it
that points elsewhere (``bag/bag.mcap -> /data/other.mcap``) must not make ``repair``,
``boxes --add``, ``export`` or the recorder truncate or rewrite that other file. Every command
that writes into an episode calls :func:`refuse_outside_links` on what it is about to write
first; it refuses in one line naming the link and where it leads. Links that stay inside the
folder are followed as usual, and the folder itself may be a link (the user put it there).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from deal_ros.episodes.meta import EpisodeError

__all__ = ["outside_link", "refuse_outside_links", "tree"]


def outside_link(root: str | Path, path: str | Path) -> tuple[Path, Path] | None:
    """``(link, target)`` for the first symbolic link on the way from ``root`` to ``path``
    (``path`` included) that leads outside ``root``, or None. ``path`` must lie under
    ``root`` as written (not resolved)."""
    root, path = Path(root), Path(path)
    base = root.resolve()
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise EpisodeError(f"'{path}' is not inside the episode folder '{root}'") from None
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            target = Path(os.path.realpath(current))
            if target != base and base not in target.parents:
                return current, target
    return None


def refuse_outside_links(root: str | Path, paths: Iterable[str | Path], what: str) -> None:
    """Raise :class:`EpisodeError` (one line) when writing ``paths`` would go through a link
    leading outside the episode folder ``root``; ``what`` names the command."""
    for path in paths:
        found = outside_link(root, path)
        if found is not None:
            link, target = found
            raise EpisodeError(
                f"{what}: '{link}' is a link to '{target}', outside the episode folder "
                f"'{root}'; refusing to write through it (replace the link by the file)"
            )


def tree(path: str | Path) -> list[Path]:
    """``path`` and everything under it, links not followed (what an export may overwrite)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    out = [path]
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            out += [Path(dirpath) / n for n in dirnames + filenames]
    return out
