"""The rosbag2 ``metadata.yaml`` of a bag (``rosbag2_bagfile_information``, version 9) from
what its MCAP data section holds: topics with type, serialization, offered QoS and RIHS01 type
hash, message counts, start and duration. The writer puts it into the bag on every close, and
:func:`~deal_ros.episodes.repair.recover_bag` after a crash (no ROS needed).
"""

from __future__ import annotations

from typing import Any

import yaml

from deal_ros.episodes import mcap_format as fmt
from deal_ros.episodes.mcap_index import McapScan

__all__ = ["ROSBAG2_VERSION", "bag_metadata"]

ROSBAG2_VERSION = 9


def _qos_list(metadata: bytes) -> Any:
    """The ``offered_qos_profiles`` entry of a channel's metadata map (as rosbags writes it)."""
    items = fmt.parse_map_entries(metadata)
    text = items.get("offered_qos_profiles", "")
    try:
        value = yaml.safe_load(text) if text else []
    except yaml.YAMLError:
        return text
    return value if value is not None else []


def _type_hash(msgtype: str, schema: tuple[str, str, bytes] | None) -> str:
    """RIHS01 hash of ``msgtype`` from the Jazzy typestore (or the bag's own definition)."""
    try:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        store = get_typestore(Stores.ROS2_JAZZY)
        if msgtype not in store.fielddefs and schema is not None:
            text = schema[2].decode("utf-8", "replace").split("\n" + "=" * 80 + "\n")[0]
            store.register(get_types_from_msg(text, msgtype))
        return store.hash_rihs01(msgtype)
    except Exception:  # unknown or unparsable definitions: the hash is optional
        return ""


def bag_metadata(scan: McapScan, hashes: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``rosbag2_bagfile_information`` mapping of ``metadata.yaml`` (rosbag2 version 9);
    ``hashes`` gives known RIHS01 type hashes (else they come from the Jazzy typestore)."""
    counts = scan.channel_counts()
    span = scan.time_range()
    start, duration = (span[0], span[1] - span[0]) if span else (0, 0)
    total = sum(counts.values())
    topics = []
    for cid, (sid, topic, encoding, metadata) in sorted(scan.channels.items()):
        schema = scan.schemas.get(sid)
        msgtype = schema[0] if schema else ""
        topics.append(
            {
                "topic_metadata": {
                    "name": topic,
                    "type": msgtype,
                    "serialization_format": encoding,
                    "offered_qos_profiles": _qos_list(metadata),
                    "type_description_hash": (hashes or {}).get(msgtype)
                    or _type_hash(msgtype, schema),
                },
                "message_count": counts.get(cid, 0),
            }
        )
    return {
        "version": ROSBAG2_VERSION,
        "storage_identifier": "mcap",
        "relative_file_paths": [scan.path.name],
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": total,
        "topics_with_message_count": topics,
        "compression_format": "",
        "compression_mode": "",
        "files": [
            {
                "path": scan.path.name,
                "starting_time": {"nanoseconds_since_epoch": start},
                "duration": {"nanoseconds": duration},
                "message_count": total,
            }
        ],
        "custom_data": None,
        "ros_distro": "rosbags",
    }
