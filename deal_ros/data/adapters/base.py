"""What every dataset adapter shares: the error type, class lists, label vectors, file reading.

Class handling (the same for every source):

- A source has a *vocabulary*: the classes its files can name (VOC's 20 classes, a COCO file's
  categories, BOP object ids, the labels found in episodes or a bag's labels file).
- The dataset's ``classes`` are the foreground classes, class id = index + 1 (0 = background,
  255 = ignore), as in :class:`~deal_ros.data.sample.Sample`.
- ``classes=`` given by the user restricts and orders them. For a closed vocabulary (VOC,
  COCO, BOP, the scene generator) a requested class the source does not know is an error, and
  the pixels of known classes left out become background (``others="background"``) or ignore
  (``others="ignore"``). For an open vocabulary (episodes, bags) every label a file names
  must be in the list.
- A label not in the class list: one line naming the label, the file and the known classes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.core.depth import depth_to_metres
from deal_ros.data.sample import Sample
from deal_ros.errors import DealError

__all__ = [
    "IGNORE",
    "IMAGE_SUFFIXES",
    "OTHERS",
    "ClassMap",
    "DatasetError",
    "IndexedDataset",
    "as_bool",
    "as_float",
    "as_int",
    "as_size",
    "check_depth_shape",
    "check_options",
    "depth_for",
    "find_file",
    "multi_hot",
    "read_depth_file",
    "read_label_png",
    "read_rgb",
    "require_dir",
    "require_file",
    "select_classes",
]

IGNORE = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
OTHERS = ("background", "ignore")


class DatasetError(DealError, ValueError):
    """A dataset cannot be read: a missing file, a bad option, a label outside the class list.
    The message is one line naming what is wrong and where."""


# ------------------------------------------------------------------ datasets
class IndexedDataset:
    """Base of the adapters: ``classes``, ``len`` and ``[i]`` with bounds checks (negative
    indices count from the end, as for lists; ``IndexError`` past the end ends iteration)."""

    classes: tuple[str, ...] = ()
    source: str = "dataset"

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{self.source}: index {index} out of range for {n} samples")
        return self._load(i)

    def _load(self, index: int) -> Sample:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source!r}, {len(self)} samples, classes={self.classes})"
        )


def check_options(factory: Callable[..., Any], opts: dict[str, Any], where: str) -> None:
    """Unknown keyword options -> one line naming them and the accepted ones."""
    params = inspect.signature(factory).parameters
    accepted = [
        n
        for n, p in params.items()
        if p.kind is p.KEYWORD_ONLY
        or (p.kind is p.POSITIONAL_OR_KEYWORD and n not in ("self", "path", "root"))
    ]
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        raise DatasetError(
            f"{where}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )


# ------------------------------------------------------------------ classes
def select_classes(
    vocabulary: Sequence[str], requested: Sequence[str] | None, where: str, *, open_set: bool
) -> tuple[str, ...]:
    """The dataset's classes: ``requested`` (checked) or the whole ``vocabulary``.

    ``open_set``: the vocabulary is what the files happen to name (episodes, bags); the user's
    list is then taken as is (files naming other labels fail later, see :func:`multi_hot`)."""
    if requested is None:
        return tuple(vocabulary)
    if isinstance(requested, str):
        requested = [c.strip() for c in requested.split(",") if c.strip()]
    req = tuple(str(c) for c in requested)
    if not req:
        raise DatasetError(f"{where}: classes= is empty")
    dup = sorted({c for c in req if req.count(c) > 1})
    if dup:
        raise DatasetError(f"{where}: classes= names {', '.join(dup)} more than once")
    if not open_set:
        known = set(vocabulary)
        for c in req:
            if c not in known:
                raise DatasetError(
                    f"{where}: class '{c}' is not in this dataset; known classes: "
                    + ", ".join(vocabulary)
                )
    return req


def multi_hot(names: Iterable[str], classes: Sequence[str], where: str) -> np.ndarray:
    """(K,) float32 multi-hot of ``names`` over ``classes``; a name outside -> DatasetError."""
    index = {c: k for k, c in enumerate(classes)}
    out = np.zeros(len(classes), np.float32)
    for name in names:
        k = index.get(name)
        if k is None:
            raise DatasetError(
                f"label '{name}' in {where} is not in the class list; known classes: "
                + (", ".join(classes) or "(none)")
            )
        out[k] = 1.0
    return out


class ClassMap:
    """Maps a source's class ids (1..len(vocabulary)) to dataset ids (1..K); vocabulary classes
    left out by ``classes=`` go to 0 (``others="background"``) or 255 (``"ignore"``)."""

    def __init__(
        self, vocabulary: Sequence[str], classes: Sequence[str], others: str = "background"
    ) -> None:
        if others not in OTHERS:
            raise DatasetError(f"others={others!r}: choose one of {', '.join(OTHERS)}")
        self.vocabulary = tuple(vocabulary)
        self.classes = tuple(classes)
        self.others = others
        fill = 0 if others == "background" else IGNORE
        lut = np.full(256, IGNORE, np.uint8)
        lut[0] = 0
        for i, name in enumerate(self.vocabulary, start=1):
            if i < IGNORE:
                lut[i] = self.classes.index(name) + 1 if name in self.classes else fill
        self.lut = lut
        self._to_new = {name: self.classes.index(name) + 1 for name in self.classes}

    def id_of(self, name: str) -> int:
        """Dataset id of a vocabulary name, 0 when left out (the caller decides what that is)."""
        return self._to_new.get(name, 0)

    def remap(self, mask: np.ndarray, where: str) -> np.ndarray:
        """Source id mask -> dataset id mask; ids outside the vocabulary (and not 255) fail."""
        bad = (mask > len(self.vocabulary)) & (mask != IGNORE)
        if bad.any():
            value = int(mask[bad][0])
            raise DatasetError(
                f"mask {where}: class id {value} is outside the {len(self.vocabulary)} classes "
                "of this dataset (0 = background, 255 = ignore)"
            )
        return self.lut[mask]

    def labels(self, names: Iterable[str], where: str) -> np.ndarray:
        """Multi-hot over the dataset classes of vocabulary ``names`` (left-out ones dropped;
        names outside the vocabulary fail)."""
        names = list(names)
        known = set(self.vocabulary)
        for n in names:
            if n not in known:
                raise DatasetError(
                    f"label '{n}' in {where} is not in the class list; known classes: "
                    + ", ".join(self.vocabulary)
                )
        return multi_hot([n for n in names if n in self._to_new], self.classes, where)

    def labels_from_mask(self, mask: np.ndarray) -> np.ndarray:
        """Multi-hot of the dataset ids present in an already remapped mask."""
        ids = np.unique(mask)
        out = np.zeros(len(self.classes), np.float32)
        ids = ids[(ids > 0) & (ids <= len(self.classes))]
        out[ids.astype(np.int64) - 1] = 1.0
        return out


# ------------------------------------------------------------------ options
def as_size(value: Any, what: str = "size") -> tuple[int, int] | None:
    """``(H, W)`` from ``(h, w)``, ``"HxW"``, ``"H,W"`` or one int (square); None stays None."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts = value.lower().replace("x", ",").split(",")
            hw = tuple(int(p) for p in parts if p.strip())
        elif isinstance(value, int):
            hw = (value, value)
        else:
            hw = tuple(int(v) for v in value)
        if len(hw) == 1:
            hw = hw * 2
        if len(hw) != 2 or min(hw) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise DatasetError(f"{what}={value!r}: expected H x W, e.g. 240x320") from None
    return hw


def as_int(value: Any, what: str) -> int:
    """An int from an int or a string (options often come from the command line)."""
    if isinstance(value, bool):
        raise DatasetError(f"{what}={value!r} is not an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{what}={value!r} is not an integer") from None


def as_float(value: Any, what: str, *, optional: bool = False) -> float | None:
    """A float from a number or a string; with ``optional``, None / "none" give None."""
    if optional and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{what}={value!r} is not a number") from None


def as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise DatasetError(f"{what}={value!r}: expected true or false")


# ------------------------------------------------------------------ files
def require_dir(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DatasetError(f"{what}: directory {p} does not exist")
    return p


def require_file(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetError(f"{what}: file {p} does not exist")
    return p


def find_file(folder: Path, stem: str, suffixes: Sequence[str], what: str) -> Path:
    """``folder/stem<suffix>`` for the first suffix that exists, else one line naming them."""
    for s in suffixes:
        p = folder / f"{stem}{s}"
        if p.is_file():
            return p
    raise DatasetError(f"{what}: no file {folder / stem}{{{','.join(suffixes)}}} for '{stem}'")


def _open(path: Path, what: str):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DatasetError(f"{what}: file {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{what}: cannot read image {path}: {exc}") from None
    return img


def read_rgb(path: Path) -> np.ndarray:
    """Any PIL-readable image -> (H, W, 3) uint8 RGB (grey and palette images expanded).

    A writable, C-contiguous copy: ``np.asarray`` of a PIL image is a read-only view, which
    C extensions (pydensecrf's typed memoryviews) and ``torch.from_numpy`` refuse or warn on.
    """
    img = _open(path, "image")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8, order="C", copy=True)


def read_label_png(path: Path) -> np.ndarray:
    """A palette (P) or grey (L) PNG of class ids -> (H, W) uint8."""
    img = _open(path, "mask")
    if img.mode not in ("P", "L"):
        raise DatasetError(
            f"mask {path}: expected a palette (P) or grey (L) PNG of class ids, got mode {img.mode}"
        )
    return np.array(img, dtype=np.uint8, order="C", copy=True)  # writable (see read_rgb)


def read_depth_file(
    path: Path,
    *,
    scale: float = 0.001,
    min_m: float | None = None,
    max_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A depth file -> ``(depth_m float32, valid bool)``; invalid pixels hold 0.

    ``.png``/``.tif`` 16-bit: raw units times ``scale`` (0.001: millimetres, 0 = invalid);
    ``.npy`` or 32-bit float ``.tif``: metres (0, NaN, inf = invalid)."""
    name = str(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise DatasetError(f"depth: file {path} does not exist")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"depth: cannot read {path}: {exc}") from None
        if arr.dtype.kind not in "fiu":
            raise DatasetError(f"depth {path}: expected a numeric array, got {arr.dtype}")
        return depth_to_metres(arr.astype(np.float32), "32FC1", min_m=min_m, max_m=max_m, name=name)
    img = _open(path, "depth")
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        return depth_to_metres(arr.astype(np.float32), "32FC1", min_m=min_m, max_m=max_m, name=name)
    if arr.dtype.kind not in "iu" or img.mode in ("L", "P", "RGB", "RGBA", "1"):
        raise DatasetError(
            f"depth {path}: expected a 16-bit PNG (raw units x {scale} = metres) or a float "
            f"image, got mode {img.mode}"
        )
    if arr.max(initial=0) > 65535 or arr.min(initial=0) < 0:
        raise DatasetError(f"depth {path}: values outside 0..65535 for a 16-bit depth image")
    return depth_to_metres(
        arr.astype(np.uint16), "16UC1", scale=scale, min_m=min_m, max_m=max_m, name=name
    )


def depth_for(
    folder: Path | None, stem: str, *, scale: float, min_m: float | None, max_m: float | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Depth of image ``stem`` from a depth folder (``.png``, ``.npy``, ``.tif``), or
    ``(None, None)`` when no folder was given. A missing file fails, naming it."""
    if folder is None:
        return None, None
    path = find_file(folder, stem, (".png", ".npy", ".tif", ".tiff"), "depth")
    return read_depth_file(path, scale=scale, min_m=min_m, max_m=max_m)


def check_depth_shape(rgb: np.ndarray, depth: np.ndarray | None, where: str) -> None:
    if depth is not None and depth.shape[:2] != rgb.shape[:2]:
        raise DatasetError(
            f"{where}: depth is {depth.shape[0]}x{depth.shape[1]} but the image is "
            f"{rgb.shape[0]}x{rgb.shape[1]}"
        )
