"""bag_metadata: the rosbag2 metadata.yaml made from what an MCAP file holds, compared with the
metadata.yaml rosbags itself writes for the same bag."""

from __future__ import annotations

import yaml
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from deal_ros.episodes.bag_metadata import ROSBAG2_VERSION, bag_metadata
from deal_ros.episodes.mcap_recover import scan_mcap

from mcap_fixtures import IMAGE, frame_bytes, stamp_of, write_bag

THING = "my_pkg/msg/Thing"  # a type the Jazzy typestore does not know


def _rosbags_bag(path):
    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg("int32 a\nstring b\n", THING))
    qos = Qos(
        QosHistory.KEEP_LAST,
        10,
        QosReliability.RELIABLE,
        QosDurability.VOLATILE,
        QosTime(0, 0),
        QosTime(0, 0),
        QosLiveliness.AUTOMATIC,
        QosTime(0, 0),
        False,
    )
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image = writer.add_connection("/img", IMAGE, typestore=store, offered_qos_profiles=[qos])
        thing = writer.add_connection("/thing", THING, typestore=store)
        for i in range(3):
            writer.write(image, stamp_of(i), bytes(frame_bytes(i)[0]))
        raw = store.serialize_cdr(store.types[THING](a=1, b="x"), THING)
        writer.write(thing, stamp_of(7), raw)
    return next(path.glob("*.mcap")), store


def test_equals_what_rosbags_writes_for_the_same_bag(tmp_path):
    mcap, store = _rosbags_bag(tmp_path / "bag")
    theirs = yaml.safe_load((mcap.parent / "metadata.yaml").read_text())
    ours = bag_metadata(scan_mcap(mcap))
    assert ours == theirs["rosbag2_bagfile_information"]
    topics = {t["topic_metadata"]["name"]: t for t in ours["topics_with_message_count"]}
    # the unknown type's hash comes from the definition stored in the bag
    assert topics["/thing"]["topic_metadata"]["type_description_hash"] == store.hash_rihs01(THING)
    assert topics["/img"]["topic_metadata"]["offered_qos_profiles"][0]["depth"] == 10
    assert ours["version"] == ROSBAG2_VERSION == 9
    assert ours["duration"]["nanoseconds"] == stamp_of(7) - stamp_of(0)


def test_counts_follow_the_kept_chunks_and_given_hashes_win(tmp_path):
    writer = write_bag(tmp_path / "bag", frames=5, flush_every=1)
    writer.flush(sync=False)
    writer.abandon()
    scan = scan_mcap(writer.path)
    del scan.chunks[3:]  # what a cut after three frames keeps
    meta = bag_metadata(scan, hashes={IMAGE: "RIHS01_given"})
    assert meta["message_count"] == 6 and meta["files"][0]["message_count"] == 6
    assert [t["message_count"] for t in meta["topics_with_message_count"]] == [3, 3]
    assert {
        t["topic_metadata"]["type_description_hash"] for t in meta["topics_with_message_count"]
    } == {"RIHS01_given"}
    assert meta["duration"]["nanoseconds"] == stamp_of(2) - stamp_of(0)
    scan.chunks.clear()
    empty = bag_metadata(scan)
    assert empty["message_count"] == 0 and empty["duration"] == {"nanoseconds": 0}
    assert empty["starting_time"] == {"nanoseconds_since_epoch": 0}


def test_still_importable_from_repair_where_it_lived():
    from deal_ros.episodes import repair

    assert repair.bag_metadata is bag_metadata and "bag_metadata" in repair.__all__
