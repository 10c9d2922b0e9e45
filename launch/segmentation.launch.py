"""Live segmentation: ``ros2 launch deal_ros segmentation.launch.py model:=models/mug``.

Arguments: ``model`` (bundle folder, required), ``image`` / ``depth`` (input topics, RealSense
names by default: the node's ``image_topic`` / ``depth_topic``), ``providers`` (auto | tensorrt |
cuda | cpu, comma lists too), ``params_file`` (default: config/segmenter.yaml of this package),
``use_depth`` (true: the depth gate's depth), ``cloud`` (true: also publish ``~/object_cloud``,
``~/objects`` and ``~/object_markers``; subscribes ``depth`` and ``camera_info``),
``camera_info`` (topic, RealSense name by default), ``autostart`` (default true: the node
configures and activates itself; false: a lifecycle manager does, e.g.
``ros2 lifecycle set /deal_segmenter configure`` then ``activate``). The node itself uses the
shipped Fast DDS profile (shared memory big enough for camera frames) unless you set one
(``FASTRTPS_DEFAULT_PROFILES_FILE``) or another RMW; this file no longer sets it, so your
choice is kept.
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description():
    share = FindPackageShare("deal_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument("model", description="model bundle folder (deal export)"),
            DeclareLaunchArgument("image", default_value="/camera/camera/color/image_raw"),
            DeclareLaunchArgument(
                "depth", default_value="/camera/camera/aligned_depth_to_color/image_raw"
            ),
            DeclareLaunchArgument("camera_info", default_value="/camera/camera/color/camera_info"),
            DeclareLaunchArgument("providers", default_value="auto"),
            DeclareLaunchArgument("cloud", default_value="false"),
            DeclareLaunchArgument("use_depth", default_value="false"),
            DeclareLaunchArgument("autostart", default_value="true"),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "segmenter.yaml"]),
            ),
            Node(
                package="deal_ros",
                executable="deal-segmenter",
                name="deal_segmenter",
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    {
                        "model": LaunchConfiguration("model"),
                        "providers": LaunchConfiguration("providers"),
                        "image_topic": LaunchConfiguration("image"),
                        "depth_topic": LaunchConfiguration("depth"),
                        "camera_info_topic": LaunchConfiguration("camera_info"),
                        "autostart": LaunchConfiguration("autostart"),
                        "cloud.enabled": LaunchConfiguration("cloud"),
                        # the 3-D outputs need depth: cloud:=true subscribes it too
                        "use_depth": PythonExpression(
                            [
                                "'",
                                LaunchConfiguration("cloud"),
                                "' == 'true' or '",
                                LaunchConfiguration("use_depth"),
                                "' == 'true'",
                            ]
                        ),
                    },
                ],
            ),
        ]
    )
