"""``key=value`` command-line settings (``deal export run=runs/x out=models/x fp16=true``).

A command declares its keys with a type and a default; unknown keys, a missing required key or
a value of the wrong type fail with one line naming the key.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deal_ros.errors import DealError

__all__ = ["Key", "parse_bool", "parse_keyvalues", "parse_size"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE | _FALSE:
        return low in _TRUE
    raise ValueError(f"expected true or false, got '{text}'")


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` (e.g. 240x320) -> (240, 320)."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"expected HEIGHTxWIDTH such as 240x320, got '{text}'")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class Key:
    """One setting: ``parse`` turns the text into a value; ``required`` keys have no default."""

    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    required: bool = False


def parse_keyvalues(items: Sequence[str], keys: dict[str, Key], command: str) -> dict[str, Any]:
    """The settings of ``items`` (``key=value`` strings) with defaults filled in."""
    values: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not eq or not key:
            raise DealError(f"'{item}': expected key=value (keys: {', '.join(keys)})")
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise DealError(f"unknown setting '{key}'{hint}; keys: {', '.join(keys)}")
        try:
            values[key] = keys[key].parse(text.strip())
        except ValueError as exc:
            raise DealError(f"setting {key}={text}: {exc}") from None
    missing = [k for k, spec in keys.items() if spec.required and k not in values]
    if missing:
        raise DealError(f"missing {', '.join(f'{k}=...' for k in missing)} (deal {command} --help)")
    for key, spec in keys.items():
        if key not in values:
            text_default = isinstance(spec.default, str) and spec.parse is not str
            values[key] = spec.parse(spec.default) if text_default else spec.default
    return values


def keys_epilog(keys: dict[str, Key]) -> str:
    """The settings table for ``--help``."""
    width = max(len(k) for k in keys) + 2
    lines = ["settings (key=value):"]
    for key, spec in keys.items():
        default = " (required)" if spec.required else f" [default: {spec.default}]"
        default = "" if spec.default is None and not spec.required else default
        lines.append(f"  {key.ljust(width)}{spec.help}{default}")
    return "\n".join(lines)
