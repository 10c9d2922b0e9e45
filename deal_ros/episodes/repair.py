"""Make an episode's bag valid after a crash, a power loss or a full disk (no ROS needed).

:func:`recover_bag` finalizes the MCAP file in place (:mod:`deal_ros.episodes.mcap_recover`
scans it, :mod:`deal_ros.episodes.mcap_summary` keeps every complete chunk and appends the
summary) and writes the rosbag2 ``metadata.yaml`` that a clean
close would have written, so ``ros2 bag`` and rosbags read the result. It copies no frame data,
so it works on a full disk and takes seconds even for gigabytes (the file is read once to
check every chunk, unless a writer vouches for a prefix with ``trusted_until``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import yaml

from deal_ros.episodes.bag_metadata import bag_metadata
from deal_ros.episodes.mcap_index import McapScan
from deal_ros.episodes.mcap_recover import scan_mcap
from deal_ros.episodes.mcap_summary import finalize_mcap
from deal_ros.episodes.mcap_writer import McapBagWriter
from deal_ros.episodes.meta import BAG_TOPICS, EpisodeError, atomic_write_text, fsync_dir

# bag_metadata: defined here before the writer needed it too (deal_ros.episodes.bag_metadata)
__all__ = ["BagRecovery", "bag_metadata", "find_mcap", "pair_counts", "recover_bag"]


@dataclass
class BagRecovery:
    """What :func:`recover_bag` did: ``frames`` complete rgb+depth pairs kept,
    ``orphans`` messages of incomplete pairs kept in the bag (readers skip them),
    ``dropped_bytes`` of torn tail cut off, and why scanning stopped (``problem``);
    ``bad_chunks`` chunks whose records fail their CRC (left in place, readers skip them and
    ``frames`` does not count them) holding ``bad_frames`` pairs."""

    mcap: Path
    frames: int
    orphans: int
    messages: int
    dropped_bytes: int
    problem: str
    was_valid: bool
    first_log_ns: int | None
    last_log_ns: int | None
    bad_chunks: int = 0
    bad_frames: int = 0
    topics: dict[str, int] | None = None  # messages kept per topic (chunks failing CRC too)

    def plain_summary(self, bag: str | Path) -> str:
        """One line for a plain bag (``deal episodes repair --bag``)."""
        if self.was_valid:
            return f"{bag}: already valid ({self.messages} messages), nothing to do"
        held = ", ".join(f"{t} {n}" for t, n in sorted((self.topics or {}).items()))
        why = f"; torn tail: {self.problem}" if self.problem else ""
        bad = f"; {self.bad_chunks} chunk(s) fail their CRC" if self.bad_chunks else ""
        return (
            f"{bag}: repaired, kept {self.messages} messages ({held or 'none'}), cut "
            f"{self.dropped_bytes} bytes{bad}{why}"
        )


def find_mcap(bag_dir: Path) -> Path:
    files = sorted(bag_dir.glob("*.mcap"))
    if len(files) != 1:
        found = ", ".join(f.name for f in files) or "none"
        raise EpisodeError(f"bag '{bag_dir}': expected one .mcap file, found {found}")
    return files[0]


def pair_counts(scan: McapScan, *, good_only: bool = True) -> tuple[int, int, list[int]]:
    """``(pairs, orphans, pair_log_times)``: log times present on both the rgb and the depth
    topic of an episode bag, and the messages of those topics that have no partner; chunks
    that fail their CRC are left out unless ``good_only=False``."""
    rgb, depth = scan.topic_channel(BAG_TOPICS["rgb"]), scan.topic_channel(BAG_TOPICS["depth"])
    rgb_t = set(scan.log_times(rgb, good_only=good_only)) if rgb is not None else set()
    depth_t = set(scan.log_times(depth, good_only=good_only)) if depth is not None else set()
    both = sorted(rgb_t & depth_t)
    return len(both), len(rgb_t ^ depth_t), both


def _write_empty_bag(bag_dir: Path) -> None:
    """Replace a bag that kept nothing usable (torn before its first chunk) by an empty
    valid bag with the episode's rgb and depth topics."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    shutil.rmtree(bag_dir)
    writer = McapBagWriter(bag_dir).open()
    for key in ("rgb", "depth"):
        writer.add_connection(BAG_TOPICS[key], "sensor_msgs/msg/Image", store)
    writer.close()


def recover_bag(
    bag_dir: str | Path,
    *,
    trusted_until: int = 0,
    progress: Callable[[int], None] | None = None,
    plain: bool = False,
) -> BagRecovery:
    """Finalize the episode bag in ``bag_dir`` in place (module doc). Idempotent: a bag that
    is already valid is only counted. ``progress(offset)`` reports scanning progress.
    ``plain``: any rosbag2 MCAP bag, not an episode's (one torn before its first topic is an
    error instead of becoming an empty episode bag)."""
    bag_dir = Path(bag_dir)
    mcap = find_mcap(bag_dir)
    scan = scan_mcap(mcap, trusted_until=trusted_until, progress=progress)
    was_valid = scan.finalized and (bag_dir / "metadata.yaml").is_file()
    problem, data_end = scan.problem, scan.valid_end
    dropped = scan.tail_bytes
    if not scan.finalized:
        if not scan.channels and plain:
            raise EpisodeError(
                f"bag '{bag_dir}': torn before its first topic ({problem or 'no record'}); "
                "nothing to keep"
            )
        if not scan.channels:
            _write_empty_bag(bag_dir)
            mcap = find_mcap(bag_dir)
            scan = scan_mcap(mcap)
        else:
            info = {"rosbag2_bagfile_information": bag_metadata(scan)}
            text = yaml.safe_dump(info["rosbag2_bagfile_information"], sort_keys=False)
            scan = finalize_mcap(scan, metadata={"serialized_metadata": text})
            dropped += data_end - scan.valid_end  # chunks given up for a full disk
    if not was_valid:
        meta = {"rosbag2_bagfile_information": bag_metadata(scan)}
        atomic_write_text(bag_dir / "metadata.yaml", yaml.safe_dump(meta, sort_keys=False))
        fsync_dir(bag_dir)
    pairs, orphans, times = pair_counts(scan)
    every_pair = pair_counts(scan, good_only=False)[0]
    return BagRecovery(
        mcap=mcap,
        frames=pairs,
        orphans=orphans,
        messages=scan.message_count,
        dropped_bytes=dropped,
        problem=problem,
        was_valid=was_valid,
        first_log_ns=times[0] if times else None,
        last_log_ns=times[-1] if times else None,
        bad_chunks=len(scan.bad_chunks),
        bad_frames=every_pair - pairs,
        topics={scan.channels[c][1]: n for c, n in scan.channel_counts().items()},
    )


def dir_bytes(path: str | Path) -> int:
    """Bytes of the regular files under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
