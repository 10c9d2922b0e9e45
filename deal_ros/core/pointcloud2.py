"""``sensor_msgs/PointCloud2`` <-> numpy structured arrays, for rclpy AND rosbags messages.

Duck-typed like :mod:`deal_ros.core.image_codec`: messages are read through the fields
``height``, ``width``, ``fields`` (``name``, ``offset``, ``datatype``, ``count``),
``is_bigendian``, ``point_step``, ``row_step``, ``data``; nothing ROS is imported at module
import time (rclpy's ``PointCloud2``/``PointField`` are imported lazily when no message type
is given).

The clouds deal_ros publishes (:func:`cloud_to_pointcloud2`) are unorganised (``height`` 1),
dense (invalid depth never becomes a point) and hold, packed without padding::

    x, y, z    FLOAT32   metres, in the frame of the header (the depth image's)
    rgb        FLOAT32   0x00RRGGBB in the bits of a float32: what RViz's "RGB8" colour
                         transformer and PCL's PointXYZRGB expect (alpha 0 keeps every
                         colour a finite float, never a NaN that a float copy could rewrite)
    class_id   UINT16    class id of the mask (UINT8 on request)

Decoding (:func:`pointcloud2_to_array`) is a zero-copy structured view on ``data`` (row
padding honoured) unless the data's byte order differs from this machine's or ``copy=True``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from deal_ros.core.cloud import Cloud, CloudError
from deal_ros.core.image_codec import _as_bytes_array, _set_rclpy_data

__all__ = [
    "POINT_FIELD_DTYPES",
    "array_to_pointcloud2",
    "cloud_dtype",
    "cloud_to_pointcloud2",
    "pack_rgb",
    "pointcloud2_dtype",
    "pointcloud2_to_array",
    "pointcloud2_to_cloud",
    "unpack_rgb",
]

#: sensor_msgs/PointField datatype constant -> numpy dtype (native byte order)
POINT_FIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.int8),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int16),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int32),
    6: np.dtype(np.uint32),
    7: np.dtype(np.float32),
    8: np.dtype(np.float64),
}
_DATATYPE_OF = {(dt.kind, dt.itemsize): code for code, dt in POINT_FIELD_DTYPES.items()}
_NATIVE_BIG = sys.byteorder == "big"


def _where(name: str | None) -> str:
    return f"PointCloud2 '{name}'" if name else "PointCloud2"


def _pack_bits(colors: np.ndarray) -> np.ndarray:
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
    return (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB -> (N,) float32 whose bits are ``0x00RRGGBB`` (RViz / PCL ``rgb``).
    Move these values as bits (``.view(np.uint32)``), never through float arithmetic."""
    return _pack_bits(colors).view(np.float32)


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N,) float32 (or uint32) packed ``rgb`` -> (N, 3) uint8 RGB (read as bits)."""
    rgb = np.asarray(rgb)
    if rgb.dtype.itemsize != 4:
        raise CloudError(f"unpack_rgb: expects 4-byte packed values, got {rgb.dtype}")
    bits = rgb.reshape(-1).view(np.uint32)
    out = np.empty((len(bits), 3), np.uint8)
    out[:, 0] = (bits >> 16) & 0xFF
    out[:, 1] = (bits >> 8) & 0xFF
    out[:, 2] = bits & 0xFF
    return out


def cloud_dtype(*, rgb: bool = True, class_dtype: Any = np.uint16) -> np.dtype:
    """The packed record of :func:`cloud_to_pointcloud2`: x, y, z, [rgb], class_id."""
    class_dtype = np.dtype(class_dtype)
    if class_dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise CloudError(f"cloud_dtype: class_dtype must be uint8 or uint16, got {class_dtype}")
    fields = [("x", np.float32), ("y", np.float32), ("z", np.float32)]
    if rgb:
        fields.append(("rgb", np.float32))
    fields.append(("class_id", class_dtype))
    return np.dtype(fields)


def pointcloud2_dtype(msg: Any, *, name: str | None = None) -> np.dtype:
    """The structured dtype (``itemsize = point_step``, field offsets as declared, byte order
    of the message) of one point of ``msg``."""
    where = _where(name)
    point_step = int(msg.point_step)
    big = bool(msg.is_bigendian)
    names, formats, offsets = [], [], []
    for f in msg.fields:
        base = POINT_FIELD_DTYPES.get(int(f.datatype))
        if base is None:
            raise CloudError(
                f"{where}: field '{f.name}' has unknown datatype {f.datatype} (1..8 expected)"
            )
        base = base.newbyteorder(">" if big else "<") if base.itemsize > 1 else base
        count = max(int(f.count), 1)
        end = int(f.offset) + base.itemsize * count
        if end > point_step:
            raise CloudError(
                f"{where}: field '{f.name}' ends at byte {end}, past point_step {point_step}"
            )
        if f.name in names:
            raise CloudError(f"{where}: field '{f.name}' appears twice")
        names.append(f.name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(int(f.offset))
    if point_step <= 0:
        raise CloudError(f"{where}: point_step must be > 0, got {point_step}")
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step}
    )


def pointcloud2_to_array(msg: Any, *, copy: bool = False, name: str | None = None) -> np.ndarray:
    """Decode ``msg`` to a structured array of ``height * width`` points (rows
    concatenated). Zero-copy unless ``copy=True``, rows are padded (``row_step`` >
    ``width * point_step``) or the byte order is not this machine's."""
    where = _where(name)
    dtype = pointcloud2_dtype(msg, name=name)
    height, width = int(msg.height), int(msg.width)
    row_step, point_step = int(msg.row_step), int(msg.point_step)
    if height < 0 or width < 0:
        raise CloudError(f"{where}: negative size {height}x{width}")
    if height * width and row_step < width * point_step:
        raise CloudError(
            f"{where}: row_step {row_step} < width x point_step = {width} x {point_step}"
        )
    flat = _as_bytes_array(msg.data)
    if flat.size < row_step * height:
        raise CloudError(
            f"{where}: data holds {flat.size} bytes, expected row_step x height = "
            f"{row_step} x {height} = {row_step * height}"
        )
    if height * width == 0:
        return np.empty(0, dtype)
    rows = flat[: row_step * height].reshape(height, row_step)[:, : width * point_step]
    arr = rows.view(dtype).reshape(-1)
    if bool(msg.is_bigendian) != _NATIVE_BIG and any(
        dtype[n].base.itemsize > 1 for n in dtype.names
    ):
        return arr.astype(dtype.newbyteorder("="))
    return arr.copy() if copy else arr


def _resolve_list_item(owner: type, field: str) -> type:
    """The element class of a rosbags ``list[...]`` field (annotations are names of classes
    living in the owner's module)."""
    kind = owner.__dataclass_fields__[field].type
    if isinstance(kind, str):
        inner = kind[kind.index("[") + 1 : kind.rindex("]")] if "[" in kind else kind
        return getattr(sys.modules[owner.__module__], inner.strip())
    return kind.__args__[0]


def _rclpy_types() -> tuple[type, type]:
    try:
        from sensor_msgs.msg import PointCloud2, PointField  # lazy: core must import w/o ROS
    except ImportError as exc:
        raise CloudError(
            f"array_to_pointcloud2: sensor_msgs.msg (rclpy) is not importable ({exc}); pass "
            "msg_type= (e.g. a rosbags typestore's PointCloud2)"
        ) from None
    return PointCloud2, PointField


def _default_header(msg_type: type) -> Any:
    header_type = getattr(sys.modules[msg_type.__module__], "std_msgs__msg__Header", None)
    time_type = getattr(sys.modules[msg_type.__module__], "builtin_interfaces__msg__Time", None)
    if header_type is None or time_type is None:
        raise CloudError(f"array_to_pointcloud2: no default header for {msg_type}; pass header=")
    return header_type(stamp=time_type(sec=0, nanosec=0), frame_id="")


def _fields_of(arr: np.ndarray, where: str) -> list[tuple[str, int, int, int]]:
    out = []
    for fname in arr.dtype.names or ():
        ftype, offset = arr.dtype.fields[fname][:2]
        base, shape = ftype.base, ftype.shape
        code = _DATATYPE_OF.get((base.kind, base.itemsize))
        if code is None or len(shape) > 1:
            raise CloudError(f"{where}: field '{fname}' has a type PointField cannot hold: {ftype}")
        out.append((fname, int(offset), code, int(shape[0]) if shape else 1))
    if not out:
        raise CloudError(f"{where}: expects a structured array with named fields")
    return out


def array_to_pointcloud2(
    arr: np.ndarray,
    header: Any = None,
    msg_type: Any = None,
    *,
    is_dense: bool = True,
    name: str | None = None,
) -> Any:
    """Build an unorganised (``height`` 1) ``sensor_msgs/PointCloud2`` from a 1-D structured
    array (fields and offsets as in ``arr.dtype``, ``point_step = arr.dtype.itemsize``).

    ``msg_type``: ``None`` -> rclpy's PointCloud2 (imported lazily); a rosbags dataclass ->
    constructed with all fields (``data`` a zero-copy uint8 view when ``arr`` is contiguous
    and native); any other class -> called without arguments, then fields set (rclpy style).
    """
    where = f"array_to_pointcloud2 {_where(name)}"
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise CloudError(f"{where}: expects a 1-D structured array, got shape {arr.shape}")
    if not all(arr.dtype[n].base.isnative for n in arr.dtype.names or ()):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr = np.ascontiguousarray(arr)
    specs = _fields_of(arr, where)
    flat = arr.view(np.uint8).reshape(-1) if arr.size else np.empty(0, np.uint8)
    size = {
        "height": 1,
        "width": len(arr),
        "is_bigendian": _NATIVE_BIG,
        "point_step": arr.dtype.itemsize,
        "row_step": arr.dtype.itemsize * len(arr),
        "is_dense": bool(is_dense),
    }
    if msg_type is None:
        msg_type, field_type = _rclpy_types()
    elif isinstance(msg_type, type) and hasattr(msg_type, "__dataclass_fields__"):
        field_type = _resolve_list_item(msg_type, "fields")
        fields = [field_type(name=n, offset=o, datatype=d, count=c) for n, o, d, c in specs]
        header = _default_header(msg_type) if header is None else header
        return msg_type(header=header, fields=fields, data=flat, **size)
    else:
        field_type = _rclpy_types()[1]
    msg = msg_type()
    if header is not None:
        msg.header = header
    msg.fields = [field_type(name=n, offset=o, datatype=d, count=c) for n, o, d, c in specs]
    for key, value in size.items():
        setattr(msg, key, value)
    _set_rclpy_data(msg, flat)
    return msg


def cloud_to_pointcloud2(
    cloud: Cloud,
    header: Any = None,
    msg_type: Any = None,
    *,
    class_dtype: Any = np.uint16,
    name: str | None = None,
) -> Any:
    """A :class:`Cloud` as the PointCloud2 of the module docstring (``rgb`` only when the
    cloud has colours)."""
    dtype = cloud_dtype(rgb=cloud.colors is not None, class_dtype=class_dtype)
    limit = np.iinfo(dtype["class_id"]).max
    if len(cloud) and int(cloud.class_ids.max()) > limit:
        raise CloudError(
            f"cloud_to_pointcloud2: class id {int(cloud.class_ids.max())} does not fit "
            f"class_dtype {dtype['class_id']}"
        )
    arr = np.empty(len(cloud), dtype)
    arr["x"], arr["y"], arr["z"] = cloud.points.T
    if cloud.colors is not None:
        arr["rgb"].view(np.uint32)[:] = _pack_bits(cloud.colors)  # bits, not float values
    arr["class_id"] = cloud.class_ids
    return array_to_pointcloud2(arr, header, msg_type, is_dense=True, name=name)


def pointcloud2_to_cloud(msg: Any, *, name: str | None = None) -> Cloud:
    """Back to a :class:`Cloud`: x, y, z required; ``rgb`` (or ``rgba``) and ``class_id``
    (or ``label``) used when present; points with a non-finite coordinate dropped."""
    arr = pointcloud2_to_array(msg, name=name)
    names = set(arr.dtype.names or ())
    if not {"x", "y", "z"} <= names:
        raise CloudError(f"{_where(name)}: fields x, y, z are required, got {sorted(names)}")
    points = np.stack([arr["x"], arr["y"], arr["z"]], axis=1).astype(np.float32)
    keep = np.isfinite(points).all(axis=1)
    colour_key = "rgb" if "rgb" in names else "rgba" if "rgba" in names else None
    colors = unpack_rgb(arr[colour_key]) if colour_key else None
    label = "class_id" if "class_id" in names else "label" if "label" in names else None
    ids = arr[label].astype(np.uint16) if label else np.zeros(len(arr), np.uint16)
    return Cloud(points, ids, colors).subset(keep)
