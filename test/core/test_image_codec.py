"""sensor_msgs/Image <-> numpy on real rclpy and rosbags message objects, through real CDR."""

from __future__ import annotations

import array
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image as RclpyImage
from std_msgs.msg import Header as RclpyHeader

from deal_ros.core.errors import ImageFormatError
from deal_ros.core.image_codec import image_spec, image_to_numpy, numpy_to_image, to_rgb8
from deal_ros.errors import DealError

TS = get_typestore(Stores.ROS2_JAZZY)
BagImage = TS.types["sensor_msgs/msg/Image"]
BagHeader = TS.types["std_msgs/msg/Header"]
BagTime = TS.types["builtin_interfaces/msg/Time"]

ENCODINGS = [
    "rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "32FC1",
    "8UC1", "8UC3", "16SC1", "32SC1", "64FC1", "rgb16", "8SC1", "32FC3",
]  # fmt: skip
LITTLE = sys.byteorder == "little"


def sample(encoding: str, h: int = 5, w: int = 7, seed: int = 0) -> np.ndarray:
    spec = image_spec(encoding)
    rng = np.random.default_rng(seed)
    shape = spec.shape(h, w)
    if spec.dtype.kind == "f":
        return rng.normal(0, 100, shape).astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    return rng.integers(info.min, info.max, shape, dtype=spec.dtype, endpoint=True)


def padded_raw(arr: np.ndarray, pad: int, big: bool) -> tuple[bytes, int]:
    """Bytes of ``arr`` with ``pad`` filler bytes (0xEE) after each row, in the byte order
    asked for; returns (data, step)."""
    h = arr.shape[0]
    dtype = arr.dtype.newbyteorder(">" if big else "<") if arr.dtype.itemsize > 1 else arr.dtype
    rows = np.ascontiguousarray(arr.astype(dtype)).reshape(h, -1).view(np.uint8)
    filler = np.full((h, pad), 0xEE, np.uint8)
    data = np.concatenate([rows, filler], axis=1)
    return data.tobytes(), data.shape[1]


def rclpy_msg(arr, encoding, pad=0, big=False) -> RclpyImage:
    data, step = padded_raw(arr, pad, big)
    return RclpyImage(
        height=arr.shape[0], width=arr.shape[1], encoding=encoding,
        is_bigendian=int(big), step=step, data=data,
    )  # fmt: skip


def bag_msg(arr, encoding, pad=0, big=False):
    data, step = padded_raw(arr, pad, big)
    return BagImage(
        header=BagHeader(stamp=BagTime(sec=3, nanosec=4), frame_id="cam"),
        height=arr.shape[0], width=arr.shape[1], encoding=encoding,
        is_bigendian=int(big), step=step, data=np.frombuffer(data, np.uint8).copy(),
    )  # fmt: skip


def data_array(msg) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_rclpy_round_trip_is_exact_and_decode_is_zero_copy(encoding):
    arr = sample(encoding)
    msg = numpy_to_image(arr, encoding)
    assert isinstance(msg, RclpyImage)
    spec = image_spec(encoding)
    assert (msg.height, msg.width, msg.step) == (5, 7, 7 * spec.pixel_bytes)
    assert msg.is_bigendian == (0 if LITTLE else 1)
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    out = image_to_numpy(msg)
    assert out.dtype == spec.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert np.shares_memory(out, data_array(msg))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_rosbags_round_trip_is_zero_copy_both_ways(encoding):
    arr = sample(encoding, seed=1)
    msg = numpy_to_image(arr, encoding, msg_type=BagImage)
    assert isinstance(msg, BagImage)
    assert np.shares_memory(msg.data, arr)  # encode: flat uint8 view of arr
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (0, 0, "")
    out = image_to_numpy(msg)
    np.testing.assert_array_equal(out, arr)
    assert np.shares_memory(out, arr)
    copied = numpy_to_image(arr, encoding, msg_type=BagImage, copy=True)
    assert not np.shares_memory(copied.data, arr)


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono8", "16UC1", "mono16", "32FC1"])
@pytest.mark.parametrize("make", [rclpy_msg, bag_msg], ids=["rclpy", "rosbags"])
def test_padded_rows_decode_as_strided_view(encoding, make):
    arr = sample(encoding, h=6, w=9, seed=2)
    msg = make(arr, encoding, pad=12)
    assert msg.step == 9 * image_spec(encoding).pixel_bytes + 12
    out = image_to_numpy(msg)
    np.testing.assert_array_equal(out, arr)
    assert np.shares_memory(out, data_array(msg))
    assert not out.flags.c_contiguous and out.strides[0] == msg.step
    copied = image_to_numpy(msg, copy=True)
    assert copied.flags.c_contiguous and not np.shares_memory(copied, data_array(msg))
    np.testing.assert_array_equal(copied, arr)


def test_step_not_a_multiple_of_the_item_size_still_decodes():
    arr = sample("16UC1", h=4, w=5)
    msg = rclpy_msg(arr, "16UC1", pad=1)  # step 11: rows start at odd addresses
    assert msg.step == 11
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1", "16SC1", "64FC1", "rgb16"])
@pytest.mark.parametrize("pad", [0, 6])
@pytest.mark.parametrize("make", [rclpy_msg, bag_msg], ids=["rclpy", "rosbags"])
def test_big_endian_data_is_converted_to_native(encoding, pad, make):
    arr = sample(encoding, seed=3)
    msg = make(arr, encoding, pad=pad, big=True)
    out = image_to_numpy(msg)
    assert out.dtype.isnative and out.dtype == image_spec(encoding).dtype
    np.testing.assert_array_equal(out, arr)
    if LITTLE:  # a byte-swapping copy, not a view on the message
        assert not np.shares_memory(out, data_array(msg))


def test_big_endian_numpy_input_is_written_in_native_order():
    arr = sample("32FC1", seed=4)
    msg = numpy_to_image(arr.astype(">f4"), "32FC1")
    assert msg.is_bigendian == (0 if LITTLE else 1)
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


def test_non_contiguous_input_is_packed():
    arr = sample("rgb8", h=8, w=10)
    msg = numpy_to_image(arr[::2, ::2], "rgb8", msg_type=BagImage)
    assert msg.step == 5 * 3
    np.testing.assert_array_equal(image_to_numpy(msg), arr[::2, ::2])


@pytest.mark.parametrize("encoding", ["rgb8", "16UC1", "32FC1", "bgra8"])
def test_rclpy_cdr_round_trip_with_header_and_padding(encoding):
    arr = sample(encoding, seed=5)
    header = RclpyHeader(frame_id="camera_color_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    built = numpy_to_image(arr, encoding, header=header)
    back = deserialize_message(serialize_message(built), RclpyImage)
    assert back.header.frame_id == "camera_color_optical_frame" and back.header.stamp.sec == 12
    np.testing.assert_array_equal(image_to_numpy(back), arr)
    padded_big = rclpy_msg(arr, encoding, pad=4, big=True)
    back = deserialize_message(serialize_message(padded_big), RclpyImage)
    np.testing.assert_array_equal(image_to_numpy(back), arr)


@pytest.mark.parametrize("encoding", ["rgb8", "16UC1", "32FC1", "mono8"])
def test_rosbags_cdr_round_trip_and_cross_library(encoding):
    arr = sample(encoding, seed=6)
    built = numpy_to_image(arr, encoding, msg_type=BagImage)
    raw = TS.serialize_cdr(built, BagImage.__msgtype__)
    np.testing.assert_array_equal(
        image_to_numpy(TS.deserialize_cdr(raw, BagImage.__msgtype__)), arr
    )
    # rosbags bytes -> rclpy object, and rclpy bytes -> rosbags object
    np.testing.assert_array_equal(image_to_numpy(deserialize_message(bytes(raw), RclpyImage)), arr)
    rclpy_raw = serialize_message(rclpy_msg(arr, encoding, pad=2, big=True))
    np.testing.assert_array_equal(
        image_to_numpy(TS.deserialize_cdr(rclpy_raw, BagImage.__msgtype__)), arr
    )


def test_rclpy_fast_data_path_equals_the_public_setter():
    arr = sample("rgb8", h=48, w=64, seed=7)
    fast = numpy_to_image(arr, "rgb8")
    slow = RclpyImage(height=48, width=64, encoding="rgb8", step=64 * 3)
    slow.is_bigendian = fast.is_bigendian
    slow.data = arr.tobytes()
    assert fast == slow
    # (CDR alignment padding bytes are not initialised: compare decoded messages, not bytes)
    assert deserialize_message(serialize_message(fast), RclpyImage) == slow


def test_message_factory_and_checked_rclpy_messages():
    arr = sample("mono16", seed=8)
    msg = numpy_to_image(arr, "mono16", msg_type=lambda: RclpyImage(check_fields=True))
    np.testing.assert_array_equal(image_to_numpy(msg), arr)
    header = BagHeader(stamp=BagTime(sec=1, nanosec=2), frame_id="x")
    bag = numpy_to_image(arr, "mono16", header=header, msg_type=BagImage)
    assert bag.header is header


def test_duck_typed_bytes_and_list_data():
    arr = sample("mono8", h=2, w=3)
    fields = dict(height=2, width=3, encoding="mono8", is_bigendian=0, step=3)
    view = image_to_numpy(SimpleNamespace(data=arr.tobytes(), **fields))
    np.testing.assert_array_equal(view, arr)
    assert not view.flags.writeable  # a view on immutable bytes
    listed = image_to_numpy(SimpleNamespace(data=arr.ravel().tolist(), **fields))
    np.testing.assert_array_equal(listed, arr)


def test_bytes_after_step_times_height_are_ignored():
    arr = sample("rgb8", h=3, w=4)
    msg = rclpy_msg(arr, "rgb8")
    msg.data.extend(b"\x01\x02\x03")
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


# --- to_rgb8 -------------------------------------------------------------------------------


def test_to_rgb8_conversions():
    rgb = sample("rgb8", seed=9)
    alpha = np.full((*rgb.shape[:2], 1), 200, np.uint8)
    cases = {
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2),
        "8UC3": rgb,
    }
    for encoding, arr in cases.items():
        out = to_rgb8(np.ascontiguousarray(arr), encoding)
        assert out.flags.c_contiguous, encoding
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
        np.testing.assert_array_equal(to_rgb8(numpy_to_image(arr, encoding)), rgb)
    mono = rgb[..., 0].copy()
    for encoding in ("mono8", "8UC1"):
        out = to_rgb8(mono, encoding)
        assert out.shape == rgb.shape
        for c in range(3):
            np.testing.assert_array_equal(out[..., c], mono)
    assert np.shares_memory(to_rgb8(rgb, "rgb8"), rgb)


def test_to_rgb8_errors():
    with pytest.raises(ImageFormatError, match=r"^to_rgb8 image: an array needs encoding=$"):
        to_rgb8(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(
        ImageFormatError, match=r"^to_rgb8 image 'cam': cannot convert '16UC1' to rgb8"
    ):
        to_rgb8(np.zeros((2, 2), np.uint16), "16UC1", name="cam")
    with pytest.raises(ImageFormatError, match=r"expects an HxWx3 array, got shape \(2, 2\)"):
        to_rgb8(np.zeros((2, 2), np.uint8), "bgr8")


# --- errors --------------------------------------------------------------------------------


def test_errors_are_deal_errors_and_value_errors():
    assert issubclass(ImageFormatError, DealError) and issubclass(ImageFormatError, ValueError)


def test_unknown_encoding():
    msg = RclpyImage(height=1, width=1, encoding="yuv422", step=2, data=b"\0\0")
    with pytest.raises(ImageFormatError, match=r"^image 'cam': unknown encoding 'yuv422'; supp"):
        image_to_numpy(msg, name="cam")
    with pytest.raises(ImageFormatError, match=r"unknown encoding '32UC1'"):
        image_spec("32UC1")


def test_step_too_small_names_the_numbers():
    msg = RclpyImage(height=480, width=640, encoding="rgb8", step=1600, data=bytes(1600 * 480))
    with pytest.raises(ImageFormatError) as err:
        image_to_numpy(msg, name="foo")
    assert str(err.value) == (
        "image 'foo': rgb8 expects step >= 1920 bytes (width 640 x 3 bytes), got 1600"
    )


def test_16uc1_step_too_small():
    msg = bag_msg(np.zeros((2, 848), np.uint16), "16UC1")
    msg.step = 1600
    with pytest.raises(ImageFormatError) as err:
        image_to_numpy(msg, name="depth")
    assert str(err.value) == (
        "image 'depth': 16UC1 expects step >= 1696 bytes (width 848 x 2 bytes), got 1600"
    )


def test_data_too_short():
    msg = RclpyImage(height=4, width=3, encoding="mono8", step=3, data=bytes(11))
    with pytest.raises(ImageFormatError) as err:
        image_to_numpy(msg)
    assert str(err.value) == "image: data holds 11 bytes, expected step*height = 3*4 = 12"


@pytest.mark.parametrize(("h", "w"), [(0, 4), (3, 0), (0, 0)])
def test_zero_size(h, w):
    msg = RclpyImage(height=h, width=w, encoding="mono8", step=w, data=b"")
    with pytest.raises(ImageFormatError) as err:
        image_to_numpy(msg)
    assert str(err.value) == f"image: zero size (height={h}, width={w}); both must be > 0"


def test_missing_field():
    with pytest.raises(ImageFormatError) as err:
        image_to_numpy(SimpleNamespace(height=1, width=1, encoding="mono8"), name="t")
    assert str(err.value) == (
        "image 't': SimpleNamespace has no field 'is_bigendian' (expected a sensor_msgs/Image)"
    )


def test_numpy_to_image_errors():
    with pytest.raises(ImageFormatError) as err:
        numpy_to_image(np.zeros((4, 5), np.uint8), "rgb8", name="out")
    assert str(err.value) == (
        "numpy_to_image image 'out': encoding 'rgb8' expects an HxWx3 array, got shape (4, 5)"
    )
    with pytest.raises(ImageFormatError) as err:
        numpy_to_image(np.zeros((4, 5), np.float32), "16UC1")
    assert str(err.value) == (
        "numpy_to_image image: encoding '16UC1' expects dtype uint16, got float32"
    )
    with pytest.raises(ImageFormatError, match=r"zero size \(height=0, width=5\)"):
        numpy_to_image(np.zeros((0, 5), np.uint8), "mono8")
    with pytest.raises(ImageFormatError, match=r"unknown encoding 'jpeg'"):
        numpy_to_image(np.zeros((1, 1), np.uint8), "jpeg")


def test_core_imports_without_ros_and_says_so_when_rclpy_is_needed():
    code = textwrap.dedent(
        """
        import sys
        for name in ("rclpy", "sensor_msgs", "std_msgs", "torch"):
            sys.modules[name] = None  # any import of these now fails
        import numpy as np
        import deal_ros.core as core
        try:
            core.numpy_to_image(np.zeros((2, 2), np.uint8), "mono8")
        except core.ImageFormatError as exc:
            print("ERR", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "ERR numpy_to_image: sensor_msgs.msg.Image (rclpy) is not importable"
    )
    assert "pass msg_type=" in done.stdout
