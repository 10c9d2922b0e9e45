"""``deal episodes list|info|repair|export``: look after onboarding episodes.

deal episodes list ./episodes          # id, labels, frames, duration, size, state
deal episodes info ./episodes/<id>     # stamps, rates, drops and why, depth validity, sizes
deal episodes repair ./episodes/<id>   # after a crash or power loss (or a whole directory)
deal episodes repair --bag ./some_bag  # the same for a plain rosbag2 MCAP bag (torn copy)
deal episodes export ./episodes/<id> --format png   # frames for a quick look
deal episodes boxes ./episodes/<id> --add mug 120,80,260,240  # operator box, whole episode
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.episodes.mcap_recover import scan_mcap
from deal_ros.episodes.meta import (
    META_FILE,
    EpisodeError,
    save_meta,
    upstream_line,
    validate_boxes,
)
from deal_ros.episodes.repair import find_mcap, pair_counts, recover_bag
from deal_ros.episodes.safe_paths import refuse_outside_links, tree
from deal_ros.episodes.store import Episode, EpisodeStore, repair_episode
from deal_ros.errors import DealError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    p = sub.add_parser("list", help="table of the episodes in a directory")
    p.add_argument("root", nargs="?", default="./episodes", help="episodes directory")
    p.add_argument("--json", action="store_true", help="one JSON object per episode")
    p = sub.add_parser("info", help="stamps, rates, drops, depth validity and sizes of one episode")
    p.add_argument("episode", help="episode directory")
    p.add_argument("--depth", action="store_true", help="decode every frame for depth statistics")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--quick",
        action="store_true",
        help="read the message indexes only (no chunk CRC check: faster on big episodes)",
    )
    p = sub.add_parser("repair", help="make interrupted episodes valid again (in place)")
    p.add_argument("paths", nargs="+", help="episode directories, or an episodes directory")
    p.add_argument(
        "--bag",
        action="store_true",
        help="the paths are plain rosbag2 MCAP bags (a folder with one .mcap, e.g. from a "
        "killed 'ros2 bag record' or a copy cut short): keep every complete chunk, write the "
        "summary and metadata.yaml, in place",
    )
    p = sub.add_parser(
        "export",
        help="write an episode's frames as files: png (rgb + 16-bit depth mm), npz, or ply "
        "(coloured point clouds, needs camera_info in the episode)",
    )
    p.add_argument("episode", help="episode directory")
    p.add_argument("--format", choices=("png", "npz", "ply"), default="png")
    p.add_argument("--out", help="output directory (default: <episode>/export-<format>)")
    p.add_argument("--every", type=int, default=1, help="keep one frame in N")
    p.add_argument("--limit", type=int, default=0, help="stop after N frames (0 = all)")
    p = sub.add_parser(
        "boxes",
        help="list, add or clear an episode's operator boxes (for deal train --config box)",
        description="Operator boxes live in episode.yaml 'boxes' (docs/formats.md); the recorder "
        "stores those given to start_episode. Pixels of the rgb image, x1/y1 exclusive.",
    )
    p.add_argument("episode", help="episode directory")
    p.add_argument("--add", nargs=2, action="append", default=[], metavar=("LABEL", "X0,Y0,X1,Y1"),
                   help="add a box around an object with one of the episode's labels "
                        "(repeatable)")  # fmt: skip
    p.add_argument("--frames", default="all",
                   help="frames the added boxes hold for: all, or rgb stamps in ns (comma "
                        "separated; 'deal episodes export' lists them in frames.csv)")  # fmt: skip
    p.add_argument("--clear", action="store_true", help="remove every box first")


def run(args: argparse.Namespace) -> int:
    actions = {"list": _list, "info": _info, "repair": _repair, "export": _export, "boxes": _boxes}
    return actions[args.action](args)


# ----------------------------------------------------------------------------- helpers


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _open(path: str) -> Episode:
    p = Path(path)
    if not (p / META_FILE).is_file():
        raise EpisodeError(f"'{p}' is not an episode directory (no {META_FILE})")
    return Episode(p)


def _progress(total: int, desc: str, unit: str = "B"):
    from tqdm import tqdm

    scale = unit == "B"
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, leave=False, file=sys.stderr)


# ----------------------------------------------------------------------------- list


def _list(args: argparse.Namespace) -> int:
    store = EpisodeStore(args.root)
    rows, records = [], []
    for item in store.scan():
        if isinstance(item, tuple):
            path, error = item
            rows.append([path.name, "?", "?", "?", "?", f"unreadable: {error}"])
            records.append({"path": str(path), "error": error})
            continue
        m = item.meta
        size = item.disk_bytes()
        rows.append(
            [
                m.episode_id,
                ",".join(m.labels),
                str(m.frames),
                f"{m.duration_s:.1f} s",
                human_bytes(size),
                item.state + (f" ({m.stop_reason})" if m.stop_reason == "disk_full" else ""),
            ]
        )
        records.append(
            {
                "episode_id": m.episode_id,
                "labels": m.labels,
                "frames": m.frames,
                "duration_s": round(m.duration_s, 3),
                "bytes": size,
                "state": item.state,
                "path": str(item.path),
            }
        )
    if args.json:
        for record in records:
            print(json.dumps(record))
        return 0
    if not rows:
        print(f"no episodes in '{store.root}'")
        return 0
    print(_table(rows, ["id", "labels", "frames", "duration", "size", "state"]))
    interrupted = [r[0] for r in rows if r[5].startswith("interrupted")]
    if interrupted:
        print(f"\n{len(interrupted)} interrupted: run 'deal episodes repair {store.root}'")
    return 0


# ----------------------------------------------------------------------------- info


def _rates(times: list[int]) -> dict[str, Any]:
    if len(times) < 2:
        return {"frames": len(times)}
    periods = np.diff(np.asarray(times, dtype=np.int64)) / 1e9
    median = float(np.median(periods))
    duration = (times[-1] - times[0]) / 1e9
    return {
        "frames": len(times),
        "duration_s": round(duration, 3),
        "mean_rate_hz": round((len(times) - 1) / duration, 2) if duration > 0 else None,
        "median_period_ms": round(median * 1e3, 2),
        "max_gap_ms": round(float(periods.max()) * 1e3, 2),
        "gaps_over_1_5_periods": int(np.sum(periods > 1.5 * median)),
    }


def _index(episode: Episode, check_crc: bool = True) -> dict[str, Any]:
    """Counts and rates from the MCAP message indexes; with ``check_crc`` every chunk is read
    and checked against its CRC (a progress bar shows it), else no frame data is read."""
    mcap = find_mcap(episode.bag_dir)
    size = mcap.stat().st_size
    if check_crc:
        with _progress(size, "check CRCs") as bar:
            scan = scan_mcap(mcap, progress=lambda off: bar.update(off - bar.n))
    else:
        scan = scan_mcap(mcap, trusted_until=size)
    pairs, orphans, times = pair_counts(scan)
    counts = {scan.channels[cid][1]: n for cid, n in scan.channel_counts().items()}
    crc: dict[str, Any] = {"checked": check_crc}
    if check_crc:
        crc.update(
            chunks=len(scan.chunks),
            without_crc=sum(1 for g in scan.chunks if g.crc_ok is None),
            failing=[g.start for g in scan.bad_chunks],
            frames_in_failing=pair_counts(scan, good_only=False)[0] - pairs,
        )
    return {
        "messages": counts,
        "pairs": pairs,
        "unpaired_messages": orphans,
        "rates": _rates(times),
        "bag_finalized": scan.finalized,
        "torn_tail": scan.problem if not scan.finalized else "",
        "crc": crc,
    }


def _depth_scan(episode: Episode) -> dict[str, Any]:
    fractions: list[float] = []
    lo, hi = [], []
    with _progress(len(episode), "depth", unit="frame") as bar:
        for frame in episode.frames():
            if frame.valid is not None:
                fractions.append(float(frame.valid.mean()))
                if frame.valid.any():
                    lo.append(float(frame.depth_m[frame.valid].min()))
                    hi.append(float(frame.depth_m[frame.valid].max()))
            bar.update(1)
    if not fractions:
        return {}
    return {
        "valid_fraction_mean": round(statistics.fmean(fractions), 4),
        "valid_fraction_min": round(min(fractions), 4),
        "frames_without_valid_depth": sum(1 for f in fractions if f == 0),
        "depth_min_m": round(min(lo), 3) if lo else None,
        "depth_max_m": round(max(hi), 3) if hi else None,
    }


def _info(args: argparse.Namespace) -> int:
    episode = _open(args.episode)
    m = episode.meta
    report: dict[str, Any] = {
        "episode_id": m.episode_id,
        "path": str(episode.path),
        "labels": m.labels,
        "state": episode.state,
        "source": m.source,
        "source_topics": m.source_topics,
        "created": m.created,
        "stopped": m.stopped,
        "stop_reason": m.stop_reason,
        "error": m.error,
        "software": m.software,
        "frames": m.frames,
        "stamps": {"first_ns": m.first_stamp_ns, "last_ns": m.last_stamp_ns},
        "dropped": m.dropped,
        "invalid": m.invalid,
        "encodings": m.encodings,
        "size": m.size,
        "depth_valid_fraction_live": m.depth_valid_fraction,
        "upstream": m.upstream,
        "clock_steps": m.clock_steps,
        "bytes_on_disk": episode.disk_bytes(),
        "repair": m.repair,
    }
    if episode.bag_dir.is_dir():
        report["bag"] = _index(episode, check_crc=not args.quick)
    if args.depth:
        if episode.state in ("recording", "interrupted"):
            raise EpisodeError(f"episode '{episode.path}' is {episode.state}: repair it first")
        report["depth"] = _depth_scan(episode)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_info_text(report))
    return 0


def _info_text(r: dict[str, Any]) -> str:
    lines = [
        f"episode   {r['episode_id']}  ({r['path']})",
        f"labels    {', '.join(r['labels'])}",
        f"state     {r['state']}"
        + (f"  (stop: {r['stop_reason']})" if r["stop_reason"] else "")
        + (f"  error: {r['error']}" if r["error"] else ""),
        f"source    {r['source']}  " + ", ".join(f"{k}={v}" for k, v in r["source_topics"].items()),
        f"recorded  {r['created']} -> {r['stopped'] or '?'}  by {r['software']}",
    ]
    size = r["size"]
    if size:
        enc = ", ".join(f"{k} {v}" for k, v in r["encodings"].items())
        lines.append(f"images    {size.get('width')}x{size.get('height')}  {enc}")
    bag = r.get("bag", {})
    rates = bag.get("rates", {})
    first, last = r["stamps"]["first_ns"], r["stamps"]["last_ns"]
    if first is not None and last is not None:
        lines.append(
            f"stamps    {first / 1e9:.3f} -> {last / 1e9:.3f} s  ({(last - first) / 1e9:.2f} s)"
        )
    frames_line = f"frames    {r['frames']}"
    if rates.get("mean_rate_hz"):
        frames_line += (
            f"  at {rates['mean_rate_hz']} Hz (median period {rates['median_period_ms']} ms, "
            f"max gap {rates['max_gap_ms']} ms, "
            f"{rates['gaps_over_1_5_periods']} gaps > 1.5 periods)"
        )
    lines.append(frames_line)
    drops = {k: v for k, v in r["dropped"].items() if v}
    invalid = {k: v for k, v in r["invalid"].items() if v}
    lines.append(
        "dropped   "
        + (", ".join(f"{k}={v}" for k, v in drops.items()) or "none")
        + (f"  (invalid: {', '.join(f'{k}={v}' for k, v in invalid.items())})" if invalid else "")
    )
    upstream = upstream_line(r["upstream"])
    if upstream:
        lines.append(f"upstream  {upstream.removeprefix('upstream loss ')}")
    if r["clock_steps"]:
        lines.append(f"clock     followed {r['clock_steps']} camera clock step(s), no frame lost")
    depth = r.get("depth") or {}
    live = r["depth_valid_fraction_live"]
    text = (
        f"depth     valid pixels {live:.1%} on average (live)" if live is not None else "depth     "
    )
    if depth:
        text += (
            f"; decoded: mean {depth['valid_fraction_mean']:.1%}, min "
            f"{depth['valid_fraction_min']:.1%}, {depth['frames_without_valid_depth']} frames "
            f"without depth, range {depth['depth_min_m']}..{depth['depth_max_m']} m"
        )
    lines.append(text.rstrip())
    per_frame = r["bytes_on_disk"] / r["frames"] if r["frames"] else 0
    lines.append(
        f"disk      {human_bytes(r['bytes_on_disk'])}"
        + (f"  ({human_bytes(per_frame)} per frame)" if per_frame else "")
    )
    if bag:
        msgs = ", ".join(f"{k} {v}" for k, v in bag["messages"].items())
        lines.append(f"bag       {msgs}; {bag['unpaired_messages']} unpaired messages")
        if not bag["bag_finalized"]:
            lines.append(f"          NOT CLOSED ({bag['torn_tail'] or 'no summary'}): run repair")
        lines.append(_crc_line(bag["crc"]))
    if r["repair"]:
        rep = r["repair"]
        lines.append(
            f"repaired  {rep.get('at')}: kept {rep.get('frames_kept')} frames, cut "
            f"{human_bytes(rep.get('dropped_bytes', 0))}"
        )
    return "\n".join(lines)


def _crc_line(crc: dict[str, Any]) -> str:
    if not crc["checked"]:
        return "crc       not checked (--quick)"
    if crc["failing"]:
        at = ", ".join(str(o) for o in crc["failing"][:5])
        return (
            f"crc       {len(crc['failing'])} of {crc['chunks']} chunks FAIL their CRC "
            f"(offsets {at}{', ...' if len(crc['failing']) > 5 else ''}): their "
            f"{crc['frames_in_failing']} frames are skipped by every reader"
        )
    if crc["without_crc"] == crc["chunks"] and crc["chunks"]:
        return f"crc       none to check ({crc['chunks']} chunks written without CRCs)"
    return f"crc       ok ({crc['chunks'] - crc['without_crc']} chunks checked)"


# ----------------------------------------------------------------------------- repair


def _targets(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if (p / META_FILE).is_file():
            out.append(p)
        elif p.is_dir():
            found = [e.path for e in EpisodeStore(p).episodes()]
            if not found:
                raise EpisodeError(f"'{p}' holds no episode")
            out.extend(found)
        else:
            raise EpisodeError(f"'{p}' is not an episode or episodes directory")
    return out


def _repair_bag(raw: str) -> str:
    """Repair one plain MCAP bag in place; its summary line."""
    bag = Path(raw)
    if bag.is_file() and bag.suffix == ".mcap":
        bag = bag.parent
    if not bag.is_dir():
        raise EpisodeError(f"'{bag}' is not a bag directory")
    mcap = find_mcap(bag)
    refuse_outside_links(bag, [mcap, bag / "metadata.yaml"], "repair --bag")
    with _progress(mcap.stat().st_size, f"repair {bag.name}") as bar:
        recovery = recover_bag(bag, plain=True, progress=lambda off: bar.update(off - bar.n))
    return recovery.plain_summary(bag)


def _repair(args: argparse.Namespace) -> int:
    failures = 0
    if args.bag:
        for raw in args.paths:
            try:
                print(_repair_bag(raw))
            except DealError as exc:
                print(f"{raw}: {exc}", file=sys.stderr)
                failures += 1
        if failures:
            raise EpisodeError(f"{failures} bag(s) could not be repaired")
        return 0
    for path in _targets(args.paths):
        try:
            episode = Episode(path)
            mcap = find_mcap(episode.bag_dir)
            with _progress(mcap.stat().st_size, f"repair {path.name}") as bar:
                report = repair_episode(path, progress=lambda off: bar.update(off - bar.n))
            print(report.summary())
        except DealError as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            failures += 1
    if failures:
        raise EpisodeError(f"{failures} episode(s) could not be repaired")
    return 0


# ----------------------------------------------------------------------------- export


def _export(args: argparse.Namespace) -> int:
    from PIL import Image

    if args.every < 1 or args.limit < 0:
        raise EpisodeError("--every must be >= 1 and --limit >= 0")
    episode = _open(args.episode)
    out = Path(args.out) if args.out else episode.path / f"export-{args.format}"
    _refuse_export_links(episode.path, out)
    out.mkdir(parents=True, exist_ok=True)
    total = -(-len(episode) // args.every)
    if args.limit:
        total = min(total, args.limit)
    if args.format == "ply":
        return _export_ply(episode, out, total, args)
    rows = []
    with _progress(total, f"export {episode.episode_id}", unit="frame") as bar:
        for n, frame in enumerate(episode.frames(every=args.every)):
            if args.limit and n >= args.limit:
                break
            stem = f"{n:06d}"
            if args.format == "png":
                files = _export_png(Image, out, stem, frame)
            else:
                files = [f"{stem}.npz"]
                np.savez_compressed(
                    out / files[0],
                    rgb=frame.rgb,
                    depth_m=frame.depth_m,
                    valid=frame.valid,
                    stamp_ns=frame.stamp_ns,
                )
            rows.append([n, frame.index, frame.stamp_ns, *files])
            bar.update(1)
    with (out / "frames.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        extra = ["rgb", "depth_mm"] if args.format == "png" else ["npz"]
        writer.writerow(["n", "pair_index", "stamp_ns", *extra])
        writer.writerows(rows)
    labels = ", ".join(episode.labels)
    print(f"exported {len(rows)} frames of '{episode.episode_id}' ({labels}) to '{out}'")
    return 0


def _refuse_export_links(episode: Path, out: Path) -> None:
    """An export into the episode folder never writes through a link leading outside it (an
    ``--out`` elsewhere is the user's choice)."""
    inside = Path(os.path.abspath(out))
    root = Path(os.path.abspath(episode))
    if inside == root or root in inside.parents:
        refuse_outside_links(root, [inside, *tree(inside)], "export")


def _export_ply(episode, out: Path, total: int, args: argparse.Namespace) -> int:
    """The whole scene of every frame as a coloured cloud (class 0: episodes hold no masks)."""
    from deal_ros.infer.cloud_export import export_episode_ply

    with _progress(total, f"export {episode.episode_id}", unit="frame") as bar:
        summary = export_episode_ply(
            episode.frames(every=args.every),
            out,
            class_names=["background", *episode.labels],
            include_background=True,
            limit=args.limit,
            progress=bar.update,
        )
    print(f"exported '{episode.episode_id}': {summary.line()}")
    return 0


def _export_png(Image, out: Path, stem: str, frame) -> list[str]:
    (out / "rgb").mkdir(exist_ok=True)
    Image.fromarray(frame.rgb).save(out / "rgb" / f"{stem}.png")
    files = [f"rgb/{stem}.png"]
    if frame.depth_m is not None:
        (out / "depth").mkdir(exist_ok=True)
        mm = np.where(frame.valid, np.rint(frame.depth_m * 1000), 0)
        mm = np.clip(mm, 0, 65535).astype(np.uint16)
        Image.fromarray(mm).save(out / "depth" / f"{stem}.png")
        files.append(f"depth/{stem}.png")
    return files


# ----------------------------------------------------------------------------- boxes


def _boxes(args: argparse.Namespace) -> int:
    episode = _open(args.episode)
    meta = episode.meta
    if args.add or args.clear:
        if episode.is_locked():
            raise EpisodeError(f"'{episode.path}' is being recorded; change its boxes after stop")
        refuse_outside_links(episode.path, [episode.path / META_FILE], "boxes")
        frames = "all" if args.frames == "all" else args.frames.split(",")
        added = [_parse_box(label, text, frames) for label, text in args.add]
        boxes = validate_boxes(([] if args.clear else meta.boxes) + added, meta.labels)
        meta.boxes = boxes
        save_meta(episode.path, meta)
    boxes = validate_boxes(meta.boxes, meta.labels, f"{episode.path / META_FILE}: boxes")
    print(f"{episode.path.name}: {len(boxes)} box(es), labels {meta.labels}")
    for k, b in enumerate(boxes):
        frames = b["frames"] if b["frames"] == "all" else f"{len(b['frames'])} frame(s)"
        print(f"  [{k}] {b['label']}: {b['x0']:g},{b['y0']:g},{b['x1']:g},{b['y1']:g} ({frames})")
    return 0


def _parse_box(label: str, text: str, frames: Any) -> dict[str, Any]:
    parts = text.split(",")
    if len(parts) != 4:
        raise EpisodeError(f"--add {label} {text}: expected X0,Y0,X1,Y1 (four numbers)")
    return {"label": label, **dict(zip(("x0", "y0", "x1", "y1"), parts)), "frames": frames}
