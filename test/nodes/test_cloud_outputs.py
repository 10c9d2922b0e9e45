"""CloudOutputs over real rclpy: PointCloud2, ObjectArray and MarkerArray through DDS."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from deal_ros.core.cloud import Intrinsics, backproject
from deal_ros.core.image_codec import numpy_to_image
from deal_ros.core.pointcloud2 import pointcloud2_to_array, pointcloud2_to_cloud

from rosutil import spin_until, wait_for_subscribers

H, W, F = 60, 80, 60.0
NAMES = ["background", "mug"]


def scene():
    """A 20 x 14 px patch at 0.5 m (class 1) in front of a wall at 1.5 m; 16UC1 mm."""
    depth_mm = np.full((H, W), 1500, np.uint16)
    depth_mm[20:34, 30:50] = 500
    depth_mm[0, :] = 0  # no measurement
    mask = np.zeros((H, W), np.uint8)
    mask[20:34, 30:50] = 1
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 200
    return depth_mm, mask, rgb


def camera_info(width: int = W, height: int = H):
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(width=width, height=height)
    info.header.frame_id = "cam_optical"
    info.k = [F, 0.0, (width - 1) / 2, 0.0, F, (height - 1) / 2, 0.0, 0.0, 1.0]
    return info


@pytest.fixture
def nodes(ros_context):
    import rclpy

    params = [
        Parameter("cloud.stride", value=1),
        Parameter("cloud.min_points", value=5),
        Parameter("cloud.backend", value="numpy"),
    ]
    node = rclpy.create_node("deal_segmenter", context=ros_context, parameter_overrides=params)
    client = rclpy.create_node("planner", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(client)
    yield node, client, executor
    executor.shutdown()
    client.destroy_node()
    node.destroy_node()


def test_outputs_arrive_over_dds_with_the_depth_header(nodes):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, PointCloud2
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker, MarkerArray

    from deal_ros.msg import ObjectArray
    from deal_ros.nodes.cloud_outputs import CloudOutputs

    node, client, executor = nodes
    outputs = CloudOutputs(node, enabled=True)
    got: dict[str, list] = {"cloud": [], "objects": [], "markers": []}
    client.create_subscription(PointCloud2, "/deal_segmenter/object_cloud", got["cloud"].append, 5)
    client.create_subscription(ObjectArray, "/deal_segmenter/objects", got["objects"].append, 5)
    client.create_subscription(
        MarkerArray, "/deal_segmenter/object_markers", got["markers"].append, 5
    )
    info_pub = client.create_publisher(CameraInfo, "/camera_info", 5)
    for pub in outputs.pubs.values():
        assert wait_for_subscribers(executor, pub)
    assert wait_for_subscribers(executor, info_pub)
    assert spin_until(executor, lambda: (info_pub.publish(camera_info()), outputs.camera_info)[1])

    depth_mm, mask, rgb = scene()
    header = Header(stamp=Time(sec=12, nanosec=345), frame_id="cam_optical")
    depth_msg = numpy_to_image(depth_mm, "16UC1", header)
    result = outputs.publish(depth_msg, None, mask, NAMES, rgb)
    assert result is not None and result.backend == "numpy"
    assert spin_until(executor, lambda: all(got.values()))

    cloud_msg = got["cloud"][0]
    assert cloud_msg.header.stamp.sec == 12 and cloud_msg.header.stamp.nanosec == 345
    assert cloud_msg.header.frame_id == "cam_optical"
    assert [(f.name, f.offset, f.datatype) for f in cloud_msg.fields] == [
        ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7), ("class_id", 16, 4),
    ]  # fmt: skip
    assert cloud_msg.point_step == 18 and cloud_msg.height == 1 and cloud_msg.is_dense
    assert cloud_msg.width == len(result.cloud) > 0
    assert cloud_msg.row_step == 18 * cloud_msg.width == len(cloud_msg.data)
    arr = pointcloud2_to_array(cloud_msg)
    np.testing.assert_array_equal(arr["z"], result.cloud.points[:, 2])
    received = pointcloud2_to_cloud(cloud_msg)
    assert set(received.class_ids) == {1} and (received.colors == [200, 0, 0]).all()
    # the patch: 20 x 14 px at 0.5 m, f = 60 -> 16.7 x 11.7 cm, centred on the optical axis
    raw = backproject(depth_mm / 1000.0, Intrinsics.from_camera_info(camera_info()), mask)
    np.testing.assert_allclose(received.points.mean(0), raw.points.mean(0), atol=0.004)

    (obj,) = got["objects"][0].objects
    assert got["objects"][0].header.stamp.sec == 12
    assert (obj.class_id, obj.class_name, obj.point_count) == (1, "mug", len(result.cloud))
    assert abs(obj.centroid.z - 0.5) < 1e-3 and abs(obj.box_pose.position.z - 0.5) < 1e-3
    sizes = sorted([obj.box_size.x, obj.box_size.y, obj.box_size.z])
    np.testing.assert_allclose(sizes[1:], [19 * 0.5 / F, 13 * 0.5 / F][::-1], atol=0.01)
    q = obj.box_pose.orientation
    assert abs(q.x**2 + q.y**2 + q.z**2 + q.w**2 - 1) < 1e-6

    markers = got["markers"][0].markers
    assert [m.action for m in markers] == [Marker.DELETEALL, Marker.ADD, Marker.ADD]
    assert [m.type for m in markers[1:]] == [Marker.CUBE, Marker.TEXT_VIEW_FACING]
    assert markers[1].header.frame_id == "cam_optical" and "mug" in markers[2].text
    assert markers[1].scale.x == pytest.approx(obj.box_size.x, abs=1e-6)


def test_without_camera_info_or_depth_it_says_so_once(nodes):
    from deal_ros.nodes.cloud_outputs import CloudOutputs

    node, _client, _executor = nodes
    outputs = CloudOutputs(node, enabled=True)
    node.set_parameters([Parameter("cloud.lazy", value=False)])  # publish with no subscriber
    depth_mm, mask, rgb = scene()
    depth_msg = numpy_to_image(depth_mm, "16UC1")
    for _ in range(3):
        assert outputs.publish(depth_msg, None, mask, NAMES, rgb) is None
        assert outputs.publish(None, camera_info(), mask, NAMES, rgb) is None
    assert len(outputs.notices) == 2
    assert "camera_info" in outputs.notices[0] and "/camera_info" in outputs.notices[0]
    assert "use_depth" in outputs.notices[1]
    # a camera_info of another aspect ratio: one error line, the node carries on
    assert outputs.publish(depth_msg, camera_info(100, 60), mask, NAMES) is None
    assert outputs.errors == 1 and outputs.published == 0
    assert outputs.publish(depth_msg, camera_info(), mask, NAMES) is not None


def test_disabled_creates_nothing_but_declares_parameters(nodes):
    from deal_ros.nodes.cloud_outputs import CLOUD_PARAMETERS, CloudOutputs

    node, _client, _executor = nodes
    outputs = CloudOutputs(node)  # cloud.enabled defaults to false
    assert not outputs.enabled and outputs.pubs == {} and outputs.info_sub is None
    assert all(node.has_parameter(name) for name in CLOUD_PARAMETERS)
    assert outputs.publish(None, None, np.zeros((2, 2), np.uint8), NAMES) is None
    assert outputs.notices == []
    names = {name for name, _ in node.get_topic_names_and_types()}
    assert "/deal_segmenter/object_cloud" not in names


def test_instances_give_one_object_each(nodes):
    """Two mugs side by side: an instance bundle's id map gives two objects of class mug with
    their instance ids (a class mask would merge them into one)."""
    from std_msgs.msg import Header

    from deal_ros.msg import ObjectArray
    from deal_ros.nodes.cloud_outputs import CloudOutputs

    node, client, executor = nodes
    outputs = CloudOutputs(node, enabled=True)
    got: list = []
    client.create_subscription(ObjectArray, "/deal_segmenter/objects", got.append, 5)
    assert wait_for_subscribers(executor, outputs.pubs["objects"])
    depth_mm, mask, rgb = scene()
    depth_mm[20:34, 5:20] = 800  # a second mug, farther, on the left
    ids = mask.copy()
    ids[20:34, 5:20] = 2
    class_mask = np.where(ids > 0, 1, 0).astype(np.uint8)
    depth_msg = numpy_to_image(depth_mm, "16UC1", Header(frame_id="cam_optical"))
    result = outputs.publish(depth_msg, camera_info(), class_mask, NAMES, rgb,
                             instances=(ids, np.array([1, 1])))  # fmt: skip
    assert result is not None and set(result.cloud.class_ids) == {1}
    assert spin_until(executor, lambda: got)
    objects = sorted(got[0].objects, key=lambda o: o.instance_id)
    assert [(o.instance_id, o.class_id, o.class_name) for o in objects] == [
        (1, 1, "mug"), (2, 1, "mug")
    ]  # fmt: skip
    assert abs(objects[0].centroid.z - 0.5) < 1e-3 and abs(objects[1].centroid.z - 0.8) < 1e-3
    assert objects[1].centroid.x < -0.1 < objects[0].centroid.x  # the second one on the left
    merged = outputs.publish(depth_msg, camera_info(), class_mask, NAMES, rgb)
    assert [o.instance_id for o in merged.objects] == [0]  # semantic: one per class
