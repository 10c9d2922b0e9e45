"""The generic config engine: dataclass schemas read from YAML presets and ``key=value`` text.

    cfg = load_config("scene", ["train.epochs=3"], schema=TrainConfig)

A *schema* is a dataclass of typed fields and dataclass sections with a ``validate()`` that
returns the config (:class:`ConfigSchema`); every method brings its own (DEAL's
``deal_ros.train.config.TrainConfig``, the box method's ``BoxTrainConfig``) and shares this
one implementation:

* A preset is a YAML file shipped in the package (:data:`PRESETS`, one namespace for every
  method: ``deal train --config NAME``) or a path; it may start from another with
  ``base: <name or path>`` (merged key by key). ``meta`` (what a run's config.yaml adds) is
  not a setting and is dropped.
* Overrides use dotted keys (``optim.lr=0.003``); values are parsed for the field's type
  (``true``/``false``, numbers, ``none``, lists as ``[a, b]`` or ``a,b``; a field that may
  hold a string keeps the text: ``name=001``). Free-form mappings (``dict`` fields such as
  ``data_options``) take any sub-key.
* An unknown key, in a file or on the command line, fails with one line naming it and the
  closest known keys (difflib); a bad value with one line naming the key and the value.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from deal_ros.errors import DealError

# The shipped presets of every method (one namespace). The files live in deal_ros/train/configs/,
# the package data folder they have always had (read as data: nothing of train/ is imported).
PRESETS = resources.files("deal_ros").joinpath("train", "configs")


class ConfigError(DealError, ValueError):
    """A bad config file, key or value: the message names it."""


class ConfigSchema(Protocol):
    """A dataclass config with cross-field checks: ``validate()`` raises ConfigError or returns
    the config."""

    def validate(self) -> Any: ...


C = TypeVar("C", bound=ConfigSchema)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (sections and leaves)."""
    keys = []
    for name, tp in _hints(cls).items():
        key = f"{prefix}{name}"
        keys.append(key)
        if _is_dataclass_type(tp):
            keys += all_keys(tp, key + ".")
    return keys


def _unknown_key(key: str, where: str, schema: type) -> ConfigError:
    known = all_keys(schema)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if not close:  # also try the last component alone ("epochs" -> "train.epochs")
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in known if k.rsplit(".", 1)[-1] == leaf][:3]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"{where}: unknown config key '{key}'{hint}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Convert a YAML value (or override text) to the field type ``tp``; one line on failure."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        is_none = value is None or (
            isinstance(value, str) and value.strip().lower() in ("none", "null")
        )
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: {key}: bad value {value!r}")
    if tp is Any:
        return value
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            text = value.strip()
            parsed = yaml.safe_load(text) if text.startswith("[") else None
            value = (
                parsed if parsed is not None else [v.strip() for v in text.split(",") if v.strip()]
            )
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{where}: {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}")
        try:
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: {key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: {key}: unsupported type {_type_name(tp)}")


def from_dict(
    data: dict[str, Any],
    cls: type[C],
    where: str = "config",
    prefix: str = "",
    root: type | None = None,
) -> C:
    """Build the dataclass ``cls`` from a nested dict; unknown keys and bad values fail
    (an unknown key is matched against the keys of ``root``, default ``cls``)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: {prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}"
        )
    root = root or cls
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in hints:
            raise _unknown_key(key, where, root)
        tp = hints[name]
        if _is_dataclass_type(tp):
            kwargs[name] = from_dict(value or {}, tp, where, key + ".", root)
        else:
            kwargs[name] = _coerce(value, tp, key, where)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML-able data."""
    return dataclasses.asdict(cfg)


# ------------------------------------------------------------------ presets and overrides
def preset_names() -> list[str]:
    """The presets shipped in the package (every method's: one namespace)."""
    folder = PRESETS
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name_or_path: str | Path) -> Path:
    """A config file: an existing path, or the name of a shipped preset."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
    if "/" not in stem and stem in preset_names():
        return Path(str(PRESETS / f"{stem}.yaml"))
    raise ConfigError(
        f"config '{text}': no such file and no such preset (presets: {', '.join(preset_names())})"
    )


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: keys of ``top`` win; mappings are merged key by key."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _merge(out[k], v) if both else copy.deepcopy(v)
    return out


def read_config_file(
    name_or_path: str | Path, schema: type | None, _seen: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The raw dict of a config file, with its ``base:`` chain merged in; its keys and values
    are checked against ``schema`` (``None``: not checked, e.g. to peek at its ``stage``)."""
    path = preset_path(name_or_path)
    if str(path) in _seen:
        raise ConfigError(f"config '{path}': 'base:' chain loops ({' -> '.join(_seen)})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" line {line + 1}" if line is not None else ""
        raise ConfigError(
            f"config '{path}'{at}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config '{path}': cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config '{path}': expected a mapping of keys, got {type(data).__name__}")
    base = data.pop("base", None)
    data.pop("meta", None)  # written into a run's config.yaml; not a setting
    if base is not None:
        data = _merge(read_config_file(base, schema, (*_seen, str(path))), data)
    if schema is not None:
        from_dict(data, schema, where=f"config '{path}'")  # fail early, naming the file
    return data


def parse_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key=value (e.g. train.epochs=5)")
    key, value = text.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ConfigError(f"override '{text}': the key is empty")
    return key, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], schema: type) -> dict[str, Any]:
    """Set dotted keys in the raw dict; every key must exist in ``schema`` (free-form mappings
    such as ``data_options.<name>`` accept any sub-key)."""
    data = copy.deepcopy(data)
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        cls, node = schema, data
        for i, part in enumerate(parts):
            hints = _hints(cls)
            if part not in hints:
                raise _unknown_key(key, "override", schema)
            tp, last = hints[part], i == len(parts) - 1
            if _is_dataclass_type(tp):
                if last:
                    sub = ", ".join(f"{key}.{k}" for k in _hints(tp))
                    raise ConfigError(f"override '{text}': '{key}' is a section; set one of {sub}")
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node, cls = node[part], tp
                continue
            if last:
                node[part] = _coerce(_yaml_scalar(value, tp), tp, key, "override")
            elif typing.get_origin(tp) is dict:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node[part][".".join(parts[i + 1 :])] = _yaml_scalar(value, Any)
            else:
                raise _unknown_key(key, "override", schema)
            break
    return data


def _yaml_scalar(text: str, tp: Any) -> Any:
    """Override text -> value: for fields that may hold a string the text is kept as is (so
    name=001 stays '001'; the type's other arms still parse it: resume=true is a bool);
    other fields go through YAML (numbers, lists, none)."""
    arms = (
        typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    )
    if str in arms:
        return text
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def load_config(source: str | Path | None, overrides: Sequence[str], schema: type[C]) -> C:
    """Preset name or path (or None: the defaults) + ``key=value`` overrides -> a validated
    ``schema``."""
    data = read_config_file(source, schema) if source else {}
    data = apply_overrides(data, overrides, schema)
    where = f"config '{source}'" if source else "config"
    return from_dict(data, schema, where=where).validate()


def config_from_file_dict(data: dict[str, Any], where: str, schema: type[C]) -> C:
    """A config read back from a run folder (``meta`` is dropped; not validated)."""
    data = {k: v for k, v in data.items() if k != "meta"}
    return from_dict(data, schema, where=where)
