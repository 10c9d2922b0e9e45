"""Onboarding: record episodes of a new object (RealSense RGB-D, or sonar through the adapter).

    ros2 launch deal_ros onboarding.launch.py labels:="[mug]"
    ros2 service call /deal_recorder/start_episode deal_ros/srv/StartEpisode "{labels: [mug]}"
    ros2 service call /deal_recorder/stop_episode deal_ros/srv/StopEpisode
    ros2 launch deal_ros onboarding.launch.py labels:="[tyre]" sonar:=true sonar_topic:=/sonar

    ros2 launch deal_ros onboarding.launch.py labels:="[mug]" camera:=true   # + the driver

Arguments: ``labels`` (default labels of start_episode, YAML list), ``camera_namespace`` and
``camera_name`` (as given to the RealSense wrapper; topics ``/<namespace>/<name>/color/...``,
default ``/camera/camera/...``), ``camera`` (true: also start the RealSense driver,
``realsense2_camera_node`` with ``align_depth.enable``, under that namespace and name),
``episodes_dir``, ``sonar`` (true: run deal_sonar_adapter on ``sonar_topic`` and record its
outputs), ``autostart`` (start an episode at once), ``lifecycle_autostart`` (default true: the
nodes configure and activate themselves; false: a lifecycle manager does, e.g.
``ros2 lifecycle set /deal_recorder configure`` then ``activate``), ``boxes_topic`` (a
``deal_ros/msg/InstanceArray`` topic, e.g. ``/deal_segmenter/instances``: its boxes are stored
per frame for box-supervised training; empty = none).
Parameters come from config/realsense.yaml or config/sonar.yaml.

Transport: the deal_ros nodes use the shipped Fast DDS profile (shared memory big enough for
camera frames) by themselves unless you set one (``FASTRTPS_DEFAULT_PROFILES_FILE``) or another
RMW; this file never overrides your choice. The camera driver needs the profile as much (the
sender's shared-memory segment decides): with ``camera:=true`` it is started with the shipped
profile when you set none; a driver you start yourself needs
``FASTRTPS_DEFAULT_PROFILES_FILE=$(ros2 pkg prefix deal_ros)/share/deal_ros/config/fastdds_shm.xml``
in its environment.
"""

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from deal_ros.nodes.transport import shipped_profile_env
from launch import LaunchDescription

_TRUE = ("true", "1", "yes")


def _nodes(context):
    def arg(name):
        return context.launch_configurations[name]

    share = FindPackageShare("deal_ros").perform(context)
    sonar = arg("sonar").lower() in _TRUE
    lifecycle_autostart = arg("lifecycle_autostart").lower() in _TRUE
    labels = yaml.safe_load(arg("labels")) or []
    if isinstance(labels, str):
        labels = [labels]
    recorder = {
        "episodes_dir": arg("episodes_dir"),
        "autostart": arg("autostart") == "true",
        "lifecycle_autostart": lifecycle_autostart,
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
                parameters=[
                    config,
                    {"input_topic": arg("sonar_topic"), "autostart": lifecycle_autostart},
                ],
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
        if arg("camera").lower() in _TRUE:
            nodes.append(_realsense(context, arg("camera_namespace"), arg("camera_name")))
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


def _realsense(context, namespace: str, name: str) -> Node:
    """The RealSense driver, with the shipped Fast DDS profile in its environment when the
    user set none (shipped_profile_env: {} otherwise, the user's choice inherited)."""
    return Node(
        package="realsense2_camera",
        executable="realsense2_camera_node",
        namespace=namespace,
        name=name,
        output="screen",
        parameters=[{"align_depth.enable": True, "enable_sync": True}],
        additional_env=shipped_profile_env(dict(context.environment)),
    )


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("labels", default_value="[]", description="e.g. [mug]"),
            DeclareLaunchArgument("camera_namespace", default_value="camera"),
            DeclareLaunchArgument("camera_name", default_value="camera"),
            DeclareLaunchArgument("episodes_dir", default_value="./episodes"),
            DeclareLaunchArgument("sonar", default_value="false"),
            DeclareLaunchArgument("sonar_topic", default_value="/sonar/image"),
            DeclareLaunchArgument("autostart", default_value="false"),
            DeclareLaunchArgument("lifecycle_autostart", default_value="true"),
            DeclareLaunchArgument(
                "camera", default_value="false", description="also start realsense2_camera"
            ),
            DeclareLaunchArgument(
                "boxes_topic", default_value="", description="detector boxes (InstanceArray)"
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
