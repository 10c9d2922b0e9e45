"""Back-projection, intrinsics, PointCloud2 and PLY (core, no rclpy node)."""

from __future__ import annotations

import numpy as np
import pytest

from deal_ros.core.cloud import Cloud, CloudError, Intrinsics, backproject
from deal_ros.core.ply import read_ply, write_ply
from deal_ros.core.pointcloud2 import (
    array_to_pointcloud2,
    cloud_to_pointcloud2,
    pack_rgb,
    pointcloud2_to_array,
    pointcloud2_to_cloud,
    unpack_rgb,
)

K = Intrinsics(fx=2.0, fy=4.0, cx=1.5, cy=1.0, width=4, height=3)


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


# ----------------------------------------------------------------------------- back-projection
def test_backproject_matches_hand_computed_points():
    depth = np.array(
        [[2.0, 0.0, 1.0, 4.0], [1.0, np.nan, 3.0, np.inf], [0.5, 1.0, -1.0, 2.0]], np.float32
    )
    mask = np.array([[1, 1, 2, 0], [1, 1, 2, 2], [1, 0, 2, 2]], np.uint8)
    rgb = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(3, 4, 3)
    cloud = backproject(depth, K, mask, rgb=rgb)
    # X = (u - cx) Z / fx, Y = (v - cy) Z / fy, Z = depth; row-major order of valid pixels
    # (v, u): (0,0) z2 c1 | (0,2) z1 c2 | (1,0) z1 c1 | (1,2) z3 c2 | (2,0) z.5 c1 | (2,3) z2 c2
    want = np.array(
        [
            [(0 - 1.5) * 2 / 2, (0 - 1) * 2 / 4, 2.0],
            [(2 - 1.5) * 1 / 2, (0 - 1) * 1 / 4, 1.0],
            [(0 - 1.5) * 1 / 2, 0.0, 1.0],
            [(2 - 1.5) * 3 / 2, 0.0, 3.0],
            [(0 - 1.5) * 0.5 / 2, (2 - 1) * 0.5 / 4, 0.5],
            [(3 - 1.5) * 2 / 2, (2 - 1) * 2 / 4, 2.0],
        ],
        np.float32,
    )
    np.testing.assert_allclose(cloud.points, want, rtol=1e-6)
    assert cloud.class_ids.tolist() == [1, 2, 1, 2, 1, 2]
    assert cloud.colors.tolist() == rgb[[0, 0, 1, 1, 2, 2], [0, 2, 0, 2, 0, 3]].tolist()


def test_invalid_depth_and_valid_mask_are_never_points():
    depth = np.full((3, 4), 1.0, np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2] = 0.0, np.nan, np.inf
    valid = np.ones((3, 4), bool)
    valid[2, 3] = False
    everything = np.ones((3, 4), np.uint8)
    assert len(backproject(depth, K, everything)) == 12 - 3  # default: finite and > 0
    cloud = backproject(depth, K, everything, valid=valid & np.isfinite(depth) & (depth > 0))
    assert len(cloud) == 12 - 4
    assert np.isfinite(cloud.points).all() and (cloud.points[:, 2] > 0).all()


def test_classes_background_and_stride():
    depth = np.ones((3, 4), np.float32)
    mask = np.array([[0, 1, 2, 255]] * 3, np.uint8)
    assert sorted(set(backproject(depth, K, mask).class_ids)) == [1, 2, 255]
    assert set(backproject(depth, K, mask, classes=[2]).class_ids) == {2}
    assert len(backproject(depth, K, mask, include_background=True)) == 12
    scene = backproject(depth, K)  # no mask: every valid pixel as class 0
    assert len(scene) == 12 and not scene.class_ids.any()
    strided = backproject(depth, K, mask, stride=2, include_background=True)
    full = backproject(depth, K, mask, include_background=True)
    # every other row and column, with the true pixel coordinates
    pick = [(v, u) for v in (0, 2) for u in (0, 2)]
    np.testing.assert_allclose(strided.points, full.points[[v * 4 + u for v, u in pick]])


def test_mask_and_rgb_of_another_size_are_resized_and_k_scaled():
    depth = np.ones((6, 8), np.float32)
    mask = np.zeros((3, 4), np.uint8)
    mask[0, 0] = 1  # covers depth pixels (0..1, 0..1)
    cloud = backproject(depth, K, mask)
    assert len(cloud) == 4
    k2 = K.for_shape((6, 8))
    assert (k2.fx, k2.fy, k2.cx, k2.cy) == (4.0, 8.0, 3.5, 2.5)
    np.testing.assert_allclose(cloud.points[0], [(0 - 3.5) / 4, (0 - 2.5) / 8, 1.0])
    with pytest.raises(CloudError, match=r"size 8x3 does not match the camera_info's 4x3"):
        backproject(np.ones((3, 8), np.float32), K, None)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(depth=np.ones((3, 4), np.uint16)), "float depth in metres"),
        (dict(mask=np.ones((3, 4), np.float32)), "integer class-id image"),
        (dict(rgb=np.ones((3, 4), np.uint8)), "HxWx3 uint8"),
        (dict(stride=0), "stride must be >= 1"),
    ],
)
def test_backproject_bad_input_is_one_clear_error(bad, message):
    args = dict(depth=np.ones((3, 4), np.float32), mask=np.ones((3, 4), np.uint8))
    args.update(bad)
    depth, mask = args.pop("depth"), args.pop("mask")
    with pytest.raises(CloudError, match=message):
        backproject(depth, K, mask, **args)


def test_intrinsics_from_camera_info_rclpy_and_rosbags():
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(width=640, height=480)
    info.k = [600.0, 0.0, 319.5, 0.0, 610.0, 239.5, 0.0, 0.0, 1.0]
    intr = Intrinsics.from_camera_info(info)
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (
        600.0, 610.0, 319.5, 239.5, 640, 480,
    )  # fmt: skip
    ts = _typestore()
    T = ts.types
    raw = ts.serialize_cdr(
        T["sensor_msgs/msg/CameraInfo"](
            header=T["std_msgs/msg/Header"](
                stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="c"
            ),
            height=480, width=640, distortion_model="plumb_bob", d=np.zeros(5),
            k=np.array(info.k), r=np.eye(3).ravel(), p=np.zeros(12), binning_x=2, binning_y=2,
            roi=T["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
            ),
        ),
        "sensor_msgs/msg/CameraInfo",
    )  # fmt: skip
    binned = Intrinsics.from_camera_info(ts.deserialize_cdr(raw, "sensor_msgs/msg/CameraInfo"))
    assert (binned.width, binned.height, binned.fx, binned.cx) == (320, 240, 300.0, 159.5)
    info.k = [0.0] * 9
    with pytest.raises(CloudError, match="camera_info 'cam': K is all zeros"):
        Intrinsics.from_camera_info(info, name="cam")


# ----------------------------------------------------------------------------- PointCloud2
def _cloud(n: int = 7, seed: int = 0) -> Cloud:
    rng = np.random.default_rng(seed)
    return Cloud(
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.integers(0, 300, n),
        rng.integers(0, 256, (n, 3)),
    )


def test_pointcloud2_layout_and_round_trip_rclpy():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import PointCloud2, PointField
    from std_msgs.msg import Header

    cloud = _cloud()
    msg = cloud_to_pointcloud2(cloud, Header(frame_id="cam"))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1),
        ("class_id", 16, PointField.UINT16, 1),
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 7, 18, 126)
    assert msg.is_dense and len(msg.data) == 126 and msg.header.frame_id == "cam"
    back = pointcloud2_to_cloud(deserialize_message(serialize_message(msg), PointCloud2))
    np.testing.assert_array_equal(back.points, cloud.points)
    np.testing.assert_array_equal(back.colors, cloud.colors)
    np.testing.assert_array_equal(back.class_ids, cloud.class_ids)
    small = cloud_to_pointcloud2(Cloud(cloud.points, 3), class_dtype=np.uint8)
    assert small.point_step == 13 and small.fields[-1].datatype == PointField.UINT8
    assert len(small.fields) == 4  # no colours, no rgb field
    with pytest.raises(CloudError, match=r"class id 299 does not fit class_dtype uint8"):
        cloud_to_pointcloud2(Cloud(cloud.points, 299), class_dtype=np.uint8)


def test_pointcloud2_rosbags_round_trip_and_rgb_bits():
    ts = _typestore()
    kind = ts.types["sensor_msgs/msg/PointCloud2"]
    cloud = _cloud(50, seed=1)
    msg = cloud_to_pointcloud2(cloud, msg_type=kind)
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, kind.__msgtype__), kind.__msgtype__)
    decoded = pointcloud2_to_cloud(back)
    np.testing.assert_array_equal(decoded.points, cloud.points)
    np.testing.assert_array_equal(decoded.colors, cloud.colors)
    # RViz's RGB8 transformer reads the float's bits as 0x00RRGGBB
    bits = pack_rgb(np.array([[255, 128, 1]], np.uint8)).view(np.uint32)
    assert bits[0] == 0x00FF8001
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(cloud.colors)), cloud.colors)


def test_pointcloud2_padded_rows_and_big_endian_decode():
    ts = _typestore()
    T = ts.types
    field = T["sensor_msgs/msg/PointField"]
    values = np.array([[1.5, -2.0, 3.25], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [0.5, 0.25, 1.0]])
    # 2 rows x 2 points, point_step 16 (4 bytes padding), row_step 40 (8 bytes padding), BE
    rows = np.zeros((2, 40), np.uint8)
    for i, p in enumerate(values):
        r, c = divmod(i, 2)
        rows[r, c * 16 : c * 16 + 12] = np.frombuffer(p.astype(">f4").tobytes(), np.uint8)
    msg = T["sensor_msgs/msg/PointCloud2"](
        header=T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
        ),
        height=2, width=2,
        fields=[field(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")],
        is_bigendian=True, point_step=16, row_step=40, data=rows.reshape(-1), is_dense=True,
    )  # fmt: skip
    arr = pointcloud2_to_array(msg)
    np.testing.assert_array_equal(np.stack([arr["x"], arr["y"], arr["z"]], 1), values)
    msg.row_step = 20
    with pytest.raises(CloudError, match=r"row_step 20 < width x point_step = 2 x 16"):
        pointcloud2_to_array(msg, name="/scan")
    msg.row_step, msg.data = 40, rows.reshape(-1)[:50]
    with pytest.raises(CloudError, match="PointCloud2 '/scan': data holds 50 bytes"):
        pointcloud2_to_array(msg, name="/scan")


def test_array_to_pointcloud2_any_structured_array():
    arr = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f8")])
    arr["intensity"] = [1, 2, 3]
    msg = array_to_pointcloud2(arr)
    assert msg.point_step == 20 and msg.fields[3].datatype == 8
    np.testing.assert_array_equal(pointcloud2_to_array(msg)["intensity"], [1, 2, 3])
    with pytest.raises(CloudError, match="field 'c' has a type PointField cannot hold"):
        array_to_pointcloud2(np.zeros(2, dtype=[("c", "c16")]))


# ----------------------------------------------------------------------------- PLY
def test_ply_round_trip_header_and_class_names(tmp_path):
    cloud = _cloud(20)
    path = write_ply(
        tmp_path / "a.ply", cloud, class_names={0: "background", 1: "mug"}, comments=["x 1"]
    )
    raw = path.read_bytes()
    header = raw[: raw.index(b"end_header")].decode().splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    assert "comment class 1 mug" in header and "element vertex 20" in header
    props = [h.split()[-1] for h in header if h.startswith("property")]
    assert props == ["x", "y", "z", "red", "green", "blue", "class"]
    assert len(raw) - raw.index(b"end_header\n") - len(b"end_header\n") == 20 * (12 + 3 + 2)
    data = read_ply(path)
    np.testing.assert_array_equal(data.cloud.points, cloud.points)
    np.testing.assert_array_equal(data.cloud.colors, cloud.colors)
    np.testing.assert_array_equal(data.cloud.class_ids, cloud.class_ids)
    assert data.class_names == {0: "background", 1: "mug"} and "x 1" in data.comments


def test_ply_reads_ascii_and_big_endian_and_rejects_truncated(tmp_path):
    text = (
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
        "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
        "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
        "1 2 3 10 20 30\n4 5 6 40 50 60\n"
    )
    (tmp_path / "a.ply").write_text(text)
    data = read_ply(tmp_path / "a.ply")
    assert data.cloud.points.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert data.cloud.colors.tolist() == [[10, 20, 30], [40, 50, 60]]
    big = np.array([(1.0, 2.0, 3.0, 7)], dtype=[("x", ">f4"), ("y", ">f4"), ("z", ">f4"),
                                              ("label", ">i4")])  # fmt: skip
    head = (
        "ply\nformat binary_big_endian 1.0\nelement vertex 1\nproperty float x\n"
        "property float y\nproperty float z\nproperty int label\nend_header\n"
    )
    (tmp_path / "b.ply").write_bytes(head.encode() + big.tobytes())
    data = read_ply(tmp_path / "b.ply")
    assert data.cloud.points.tolist() == [[1, 2, 3]] and data.cloud.class_ids.tolist() == [7]
    (tmp_path / "c.ply").write_bytes(head.encode() + big.tobytes()[:10])
    with pytest.raises(CloudError, match=r"c.ply': truncated: 10 bytes of vertex data"):
        read_ply(tmp_path / "c.ply")
    (tmp_path / "d.ply").write_text("hello")
    with pytest.raises(CloudError, match="not a PLY file"):
        read_ply(tmp_path / "d.ply")
