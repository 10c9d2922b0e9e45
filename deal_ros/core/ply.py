"""PLY point clouds: a binary little-endian writer and a reader (numpy only).

Written files hold one ``vertex`` element with ``float x, y, z`` (metres), ``uchar red,
green, blue`` (when the cloud has colours) and ``ushort class`` (class id, 0 = background) --
what MeshLab, CloudCompare, Open3D and Blender read (``class`` shows up as a scalar field).
Class names and any extra metadata go into ``comment`` lines::

    ply
    format binary_little_endian 1.0
    comment deal_ros point cloud
    comment class 1 mug
    comment frame_id camera_color_optical_frame
    element vertex 1234
    property float x
    ...
    end_header

The reader takes ``binary_little_endian``, ``binary_big_endian`` and ``ascii`` files with a
``vertex`` element of scalar properties (other elements, e.g. faces, must come after it and
are ignored) and gives back a :class:`~deal_ros.core.cloud.Cloud` plus the comments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deal_ros.core.cloud import Cloud, CloudError

__all__ = ["PlyData", "read_ply", "write_ply"]

#: PLY scalar type names (both spellings of the spec) -> numpy dtype (little-endian)
PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}  # fmt: skip
_MAX_HEADER = 1 << 20


@dataclass
class PlyData:
    """A read PLY file: the cloud, the class names found in ``comment class <id> <name>``
    lines, the other comments, and every vertex property as read (structured array)."""

    cloud: Cloud
    class_names: dict[int, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    vertex: np.ndarray | None = None


def _comment_lines(class_names: dict[int, str] | None, comments: list[str] | None) -> list[str]:
    lines = ["comment deal_ros point cloud"]
    for class_id, name in sorted((class_names or {}).items()):
        lines.append(f"comment class {int(class_id)} {name}")
    lines.extend(f"comment {text}" for text in comments or [])
    for line in lines:
        if "\n" in line or "\r" in line:
            raise CloudError(f"write_ply: a comment may not hold a line break: {line!r}")
    return lines


def write_ply(
    path: str | Path,
    cloud: Cloud,
    *,
    class_names: dict[int, str] | None = None,
    comments: list[str] | None = None,
) -> Path:
    """Write ``cloud`` as a binary little-endian PLY file (atomically: tmp + rename).

    ``class_names``: ``{class id: name}`` stored as comments; ``comments``: extra lines."""
    path = Path(path)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if cloud.colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    fields.append(("class", "<u2"))
    vertex = np.empty(len(cloud), dtype=fields)
    vertex["x"], vertex["y"], vertex["z"] = cloud.points.T
    if cloud.colors is not None:
        vertex["red"], vertex["green"], vertex["blue"] = cloud.colors.T
    vertex["class"] = cloud.class_ids
    names = {"<f4": "float", "u1": "uchar", "<u2": "ushort"}
    header = [
        "ply",
        "format binary_little_endian 1.0",
        *_comment_lines(class_names, comments),
        f"element vertex {len(cloud)}",
        *(f"property {names[t]} {n}" for n, t in fields),
        "end_header",
    ]
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(("\n".join(header) + "\n").encode("ascii"))
            fh.write(vertex.tobytes())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CloudError(f"write_ply '{path}': {exc.strerror or exc}") from None
    except UnicodeEncodeError:
        tmp.unlink(missing_ok=True)
        raise CloudError(f"write_ply '{path}': class names and comments must be ASCII") from None
    return path


@dataclass
class _Header:
    fmt: str
    count: int
    dtype: np.dtype
    comments: list[str]
    size: int  # bytes up to and including the end_header line


def _parse_header(raw: bytes, where: str) -> _Header:
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise CloudError(f"{where}: not a PLY file (no 'ply' magic or no 'end_header')")
    newline = raw.find(b"\n", end)
    size = newline + 1 if newline >= 0 else len(raw)
    lines = raw[:end].decode("ascii", "replace").replace("\r", "").split("\n")[1:]
    fmt, count, props, comments, element = "", -1, [], [], None
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "format":
            fmt = words[1] if len(words) > 1 else ""
        elif words[0] == "comment":
            comments.append(line.partition("comment")[2].strip())
        elif words[0] == "element":
            element = words[1] if len(words) > 1 else ""
            if element == "vertex":
                count = int(words[2])
            elif count < 0:
                raise CloudError(f"{where}: element '{element}' before 'vertex' is not supported")
        elif words[0] == "property" and element == "vertex":
            if words[1] == "list" or words[1] not in PLY_TYPES or len(words) != 3:
                raise CloudError(f"{where}: unsupported vertex property {line.strip()!r}")
            props.append((words[2], PLY_TYPES[words[1]]))
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise CloudError(f"{where}: unsupported format {fmt!r}")
    if count < 0:
        raise CloudError(f"{where}: no 'element vertex' in the header")
    dtype = np.dtype(props)
    if fmt == "binary_big_endian":
        dtype = dtype.newbyteorder(">")
    return _Header(fmt, count, dtype, comments, size)


def _read_vertex(path: Path, head: _Header, where: str) -> np.ndarray:
    with open(path, "rb") as fh:
        fh.seek(head.size)
        if head.fmt == "ascii":
            text = fh.read().decode("ascii", "replace").split("\n")[: head.count]
            values = np.loadtxt(text, ndmin=2) if head.count else np.empty((0, 0))
            if len(values) != head.count:
                raise CloudError(f"{where}: {len(values)} vertex rows, header says {head.count}")
            out = np.empty(head.count, head.dtype)
            for i, name in enumerate(head.dtype.names or ()):
                out[name] = values[:, i]
            return out
        data = fh.read(head.count * head.dtype.itemsize)
    if len(data) < head.count * head.dtype.itemsize:
        raise CloudError(
            f"{where}: truncated: {len(data)} bytes of vertex data, expected "
            f"{head.count} x {head.dtype.itemsize} = {head.count * head.dtype.itemsize}"
        )
    return np.frombuffer(data, dtype=head.dtype, count=head.count)


def _class_names(comments: list[str]) -> tuple[dict[int, str], list[str]]:
    names, rest = {}, []
    for text in comments:
        words = text.split(maxsplit=2)
        if len(words) == 3 and words[0] == "class" and words[1].isdigit():
            names[int(words[1])] = words[2]
        else:
            rest.append(text)
    return names, rest


def read_ply(path: str | Path) -> PlyData:
    """Read a PLY point cloud (see the module docstring): x, y, z are required; colours from
    ``red/green/blue`` (or ``r/g/b``) and class ids from ``class`` (or ``label``) when present."""
    path = Path(path)
    where = f"ply '{path}'"
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_HEADER)
    except OSError as exc:
        raise CloudError(f"{where}: {exc.strerror or exc}") from None
    head = _parse_header(raw, where)
    names = set(head.dtype.names or ())
    if not {"x", "y", "z"} <= names:
        raise CloudError(f"{where}: vertex properties x, y, z are required, got {sorted(names)}")
    vertex = _read_vertex(path, head, where)
    points = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float32)
    colors = None
    for keys in (("red", "green", "blue"), ("r", "g", "b")):
        if set(keys) <= names:
            colors = np.stack([vertex[k] for k in keys], axis=1).astype(np.uint8)
            break
    label = "class" if "class" in names else "label" if "label" in names else None
    class_ids = vertex[label].astype(np.uint16) if label else np.zeros(len(vertex), np.uint16)
    class_names, comments = _class_names(head.comments)
    return PlyData(Cloud(points, class_ids, colors), class_names, comments, vertex)
