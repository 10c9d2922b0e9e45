"""Onboarding: record episodes of a new object (RealSense RGB-D, or sonar through the adapter).

    ros2 launch deal_ros onboarding.launch.py labels:="[mug]"
    ros2 service call /deal_recorder/start_episode deal_ros/srv/StartEpisode "{labels: [mug]}"
    ros2 service call /deal_recorder/stop_episode deal_ros/srv/StopEpisode
    ros2 launch deal_ros onboarding.launch.py labels:="[tyre]" sonar:=true sonar_topic:=/sonar

Arguments: ``labels`` (default labels of start_episode, YAML list), ``camera_namespace`` and
``camera_name`` (as given to the RealSense wrapper; topics ``/<namespace>/<name>/color/...``,
default ``/camera/camera/...``), ``episodes_dir``, ``sonar`` (true: run deal_sonar_adapter on
``sonar_topic`` and record its outputs), ``autostart`` (start an episode at once),
``boxes_topic`` (a ``deal_ros/msg/InstanceArray`` topic, e.g. ``/deal_segmenter/instances``:
its boxes are stored per frame for box-supervised training; empty = none).
Parameters come from config/realsense.yaml or config/sonar.yaml. The shipped Fast DDS profile
(shared memory big enough for camera frames) is set for the nodes.
"""

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def _nodes(context):
    def arg(name):
        return context.launch_configurations[name]

    share = FindPackageShare("deal_ros").perform(context)
    sonar = arg("sonar").lower() in ("true", "1", "yes")
    labels = yaml.safe_load(arg("labels")) or []
    if isinstance(labels, str):
        labels = [labels]
    recorder = {
        "episodes_dir": arg("episodes_dir"),
        "autostart": arg("autostart") == "true",
        "boxes_topic": arg("boxes_topic"),
    }
    if labels:  # an empty list has no parameter type: leave the parameter unset
        recorder["labels"] = [str(label) for label in labels]
    nodes = []
    if sonar:
        config = f"{share}/config/sonar.yaml"
        nodes.append(
            Node(
                package="deal_ros",
                executable="deal-sonar-adapter",
                name="deal_sonar_adapter",
                output="screen",
                parameters=[config, {"input_topic": arg("sonar_topic")}],
            )
        )
    else:
        config = f"{share}/config/realsense.yaml"
        camera = "/" + "/".join(
            p for p in (arg("camera_namespace"), arg("camera_name")) for p in [p.strip("/")] if p
        )
        recorder["rgb_topic"] = f"{camera}/color/image_raw"
        recorder["depth_topic"] = f"{camera}/aligned_depth_to_color/image_raw"
        recorder["camera_info_topic"] = f"{camera}/color/camera_info"
    nodes.append(
        Node(
            package="deal_ros",
            executable="deal-recorder",
            name="deal_recorder",
            output="screen",
            parameters=[config, recorder],
        )
    )
    return nodes


def generate_launch_description():
    share = FindPackageShare("deal_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument("labels", default_value="[]", description="e.g. [mug]"),
            DeclareLaunchArgument("camera_namespace", default_value="camera"),
            DeclareLaunchArgument("camera_name", default_value="camera"),
            DeclareLaunchArgument("episodes_dir", default_value="./episodes"),
            DeclareLaunchArgument("sonar", default_value="false"),
            DeclareLaunchArgument("sonar_topic", default_value="/sonar/image"),
            DeclareLaunchArgument("autostart", default_value="false"),
            DeclareLaunchArgument(
                "boxes_topic", default_value="", description="detector boxes (InstanceArray)"
            ),
            SetEnvironmentVariable(
                "FASTRTPS_DEFAULT_PROFILES_FILE",
                PathJoinSubstitution([share, "config", "fastdds_shm.xml"]),
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
