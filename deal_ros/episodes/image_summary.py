"""What an episode's images are, read back from its bag: size, encodings and the share of valid
depth pixels, for ``episode.yaml`` when the recorder could not write them (it died before its
first metadata checkpoint) and ``deal episodes repair`` restores them.

The same per-pair numbers the live recorder keeps (:class:`~deal_ros.episodes.recording.
RecordingSession`): size and encodings of the first pair, and the mean of
:func:`~deal_ros.core.depth.measured_fraction` over the pairs, here over at most ``samples``
pairs evenly spread over the episode (our choice: 100 decodes of the depth alone, well under a
second at 848x480, whatever the length).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deal_ros.core.depth import measured_fraction
from deal_ros.core.errors import ImageFormatError
from deal_ros.core.image_codec import image_to_numpy
from deal_ros.episodes.bag_io import BagError, open_bag
from deal_ros.episodes.cdr_image import parse_image
from deal_ros.episodes.meta import BAG_TOPICS

__all__ = ["ImageSummary", "summarize_images"]


@dataclass(frozen=True)
class ImageSummary:
    size: dict[str, int]  # {height, width} or {} when no pair could be read
    encodings: dict[str, str]
    depth_valid_fraction: float | None
    pairs_read: int


def summarize_images(bag_dir: str | Path, pair_log_times: list[int], samples: int = 100):
    """:class:`ImageSummary` of the pairs logged at ``pair_log_times`` (module doc)."""
    if not pair_log_times:
        return ImageSummary({}, {}, None, 0)
    step = max(1, len(pair_log_times) // max(1, samples))
    picked = pair_log_times[::step][:samples]
    size: dict[str, int] = {}
    encodings: dict[str, str] = {}
    fractions: list[float] = []
    try:
        source = open_bag(bag_dir)
    except BagError:
        return ImageSummary({}, {}, None, 0)
    try:
        for log_time in picked:
            try:
                rgb = parse_image(source.message_at(BAG_TOPICS["rgb"], log_time)[0])
                depth = parse_image(source.message_at(BAG_TOPICS["depth"], log_time)[0])
                depth_arr = image_to_numpy(depth)
            except (BagError, ImageFormatError, IndexError):
                continue  # a chunk failing its CRC, or a message not decodable: not counted
            if not size:
                size = {"height": rgb.height, "width": rgb.width}
                encodings = {"rgb": rgb.encoding, "depth": depth.encoding}
            fractions.append(measured_fraction(depth_arr))
    finally:
        source.close()
    mean = round(sum(fractions) / len(fractions), 4) if fractions else None
    return ImageSummary(size, encodings, mean, len(fractions))
