"""Onboarding episodes on disk: recording sessions, the MCAP writer and its recovery, the
``episode.yaml`` metadata, the episode store and its repair, paired frames read back from any
rosbag (no rclpy, no torch; format in docs/formats.md)."""
