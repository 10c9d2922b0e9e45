"""Old import paths of modules that moved (kept for one release, with a DeprecationWarning).

The redesign of 0.2 gave episode storage (``deal_ros.episodes``) and the scene generator
(``deal_ros.scene``) rooms of their own. A module at an old path calls :func:`alias`, which
warns once and makes the old name the very same module object as the new one, so attributes,
``isinstance`` checks and ``unittest.mock.patch`` on either name behave alike.
"""

from __future__ import annotations

import importlib
import sys
import warnings

REMOVED_IN = "0.3"


def alias(old: str, new: str) -> None:
    """Make module ``old`` an alias of ``new`` (call from the module at the old path)."""
    warnings.warn(
        f"{old} moved to {new}; the old path is removed in deal_ros {REMOVED_IN}",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = importlib.import_module(new)
