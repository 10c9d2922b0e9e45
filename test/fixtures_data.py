"""Writers of tiny datasets in their REAL on-disk formats (PIL PNG/JPEG, json, VOC xml,
BOP folders, rosbag2 bags via rosbags), used by the adapter tests.

Every writer returns what it wrote (ids, labels, masks, depth) so tests compare the adapters'
output with the truth rather than with hard-coded numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

VOC_PALETTE = [0] * 768
for _i in range(256):  # the VOC colour map (bit-interleaved), as the real palette PNGs hold
    _c, _r, _g, _b = _i, 0, 0, 0
    for _j in range(8):
        _r |= ((_c >> 0) & 1) << (7 - _j)
        _g |= ((_c >> 1) & 1) << (7 - _j)
        _b |= ((_c >> 2) & 1) << (7 - _j)
        _c >>= 3
    VOC_PALETTE[3 * _i : 3 * _i + 3] = [_r, _g, _b]


@dataclass
class Written:
    """What a fixture writer put on disk (per image, in the adapter's order)."""

    root: Path
    ids: list = field(default_factory=list)
    labels: list = field(default_factory=list)  # list of class-name lists
    masks: list = field(default_factory=list)  # (H, W) uint8 class ids in the source's ids
    depth_m: list = field(default_factory=list)  # (H, W) float32 metres, 0 = invalid
    rgb: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def rgb_image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=3)
    yy, xx = np.mgrid[0:h, 0:w]
    img = base[None, None, :] + ((xx * 3 + yy * 2)[..., None] % 40)
    return img.astype(np.uint8)


def depth_mm(
    h: int, w: int, seed: int, hole: tuple[int, int, int, int] = (0, 0, 3, 4)
) -> np.ndarray:
    """uint16 millimetres: a ramp from 500 mm, 0 (invalid) in the ``hole`` (y0, x0, y1, x1)."""
    yy, xx = np.mgrid[0:h, 0:w]
    d = (500 + 10 * seed + 7 * xx + 3 * yy).astype(np.uint16)
    y0, x0, y1, x1 = hole
    d[y0:y1, x0:x1] = 0
    return d


def save_png16(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint16)).save(path)


def save_palette_png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette(VOC_PALETTE)
    img.save(path)


# ------------------------------------------------------------------ VOC
VOC_XML = """<annotation>
  <folder>VOC2012</folder><filename>{id}.jpg</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>
"""
VOC_OBJECT = """  <object><name>{name}</name><difficult>0</difficult>
    <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>
  </object>
"""


def write_voc(
    root: Path,
    size: tuple[int, int] = (24, 32),
    depth: str | None = "png",
    xml_only: tuple[str, ...] = ("2007_000004",),
) -> Written:
    """VOC2012 folder: 3 train ids (two with masks + xml, ``xml_only`` with xml only), 1 val.

    Image i holds rectangles of classes (VOC ids); masks have a 255 void border around each
    rectangle. Depth: 16-bit PNG mm (``"png"``) or .npy metres (``"npy"``) under root/depth."""
    from deal_ros.data.adapters.voc import VOC_CLASSES

    h, w = size
    voc = root / "VOCdevkit" / "VOC2012"
    plan = {
        "2007_000001": [(8, (2, 3, 12, 14))],  # cat
        "2007_000002": [(12, (4, 2, 20, 12)), (15, (10, 16, 22, 30))],  # dog, person
        "2007_000004": [(5, (1, 1, 10, 10))],  # bottle (xml only)
        "2007_000003": [(1, (5, 5, 15, 25))],  # aeroplane (val)
    }
    splits = {"train": ["2007_000001", "2007_000002", "2007_000004"], "val": ["2007_000003"]}
    out = Written(root=voc)
    for k, (image_id, objs) in enumerate(plan.items()):
        rgb = rgb_image(h, w, k)
        (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95)
        mask = np.zeros((h, w), np.uint8)
        xml_objs = ""
        for cid, (y0, x0, y1, x1) in objs:
            mask[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = 255
            mask[y0:y1, x0:x1] = cid
            xml_objs += VOC_OBJECT.format(
                name=VOC_CLASSES[cid - 1], x0=x0 + 1, y0=y0 + 1, x1=x1, y1=y1
            )
        if image_id not in xml_only:
            save_palette_png(voc / "SegmentationClass" / f"{image_id}.png", mask)
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{image_id}.xml").write_text(
            VOC_XML.format(id=image_id, w=w, h=h, objects=xml_objs)
        )
        d = depth_mm(h, w, k)
        if depth == "png":
            save_png16(root / "depth" / f"{image_id}.png", d)
        elif depth == "npy":
            (root / "depth").mkdir(parents=True, exist_ok=True)
            np.save(root / "depth" / f"{image_id}.npy", d.astype(np.float32) / 1000)
        out.ids.append(image_id)
        out.labels.append(sorted({VOC_CLASSES[c - 1] for c, _ in objs}))
        out.masks.append(None if image_id in xml_only else mask)
        out.depth_m.append(d.astype(np.float32) / 1000)
        out.rgb.append(rgb)
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    for name, ids in splits.items():
        (sets / f"{name}.txt").write_text("\n".join(ids) + "\n")
    out.extra["splits"] = splits
    return out


# ------------------------------------------------------------------ COCO
def write_coco(root: Path, size: tuple[int, int] = (30, 40), with_rle: bool = False) -> Written:
    """annotations/instances_val2017.json + val2017/*.jpg (the standard layout) + depth/*.png.

    Image 1: a 'cup' square polygon and a 'person' triangle; image 2: two 'dog' squares;
    image 3: no annotation. Category ids are sparse (like COCO's): cup 47, dog 18, person 1.
    With ``with_rle``, image 2 also gets a crowd 'person' region in uncompressed RLE."""
    h, w = size
    cats = [{"id": 47, "name": "cup"}, {"id": 18, "name": "dog"}, {"id": 1, "name": "person"}]
    images, anns = [], []
    out = Written(root=root)

    def square(x0, y0, x1, y1):
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]

    plan = {
        1: [(47, square(2, 2, 12, 10)), (1, [[20, 5, 35, 5, 35, 25]])],
        2: [(18, square(0, 0, 8, 8)), (18, square(20, 15, 30, 25))],
        3: [],
    }
    for k, (image_id, objs) in enumerate(plan.items()):
        name = f"{image_id:012d}.jpg"
        rgb = rgb_image(h, w, 10 + k)
        (root / "val2017").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(root / "val2017" / name, quality=95)
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        for cid, poly in objs:
            xs, ys = poly[0][0::2], poly[0][1::2]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cid,
                    "segmentation": poly,
                    "iscrowd": 0,
                    "area": float((max(xs) - min(xs)) * (max(ys) - min(ys))),
                    "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                }
            )
        save_png16(root / "depth" / f"{image_id:012d}.png", depth_mm(h, w, k))
        out.ids.append(image_id)
        out.labels.append(sorted({c["name"] for c in cats for cid, _ in objs if c["id"] == cid}))
        out.depth_m.append(depth_mm(h, w, k).astype(np.float32) / 1000)
    if with_rle:
        m = np.zeros((h, w), np.uint8)
        m[26:29, 2:10] = 1  # column-major runs, as COCO's uncompressed RLE
        flat = m.flatten(order="F")
        counts, cur, run = [], 0, 0
        for v in flat:
            if v != cur:
                counts.append(run)
                cur, run = v, 0
            run += 1
        counts.append(run)
        anns.append(
            {
                "id": len(anns) + 1,
                "image_id": 2,
                "category_id": 1,
                "iscrowd": 1,
                "segmentation": {"size": [h, w], "counts": counts},
                "area": 24.0,
                "bbox": [2, 26, 8, 3],
            }
        )
        out.extra["rle_mask"] = m.astype(bool)
        out.labels[1] = sorted([*out.labels[1], "person"])
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    path = root / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    out.extra["json"] = path
    return out


# ------------------------------------------------------------------ BOP
def write_bop(root: Path, size: tuple[int, int] = (20, 28), depth_scale: float = 0.1) -> Written:
    """hope/val/000001 with 2 images, hope/val/000002 with 1; objects 1, 3, 7 (obj 7 of
    image 0 fully occluded: px_count_visib 0). Depth PNG raw = mm / depth_scale."""
    h, w = size
    split = root / "hope" / "val"
    plan = {
        1: {0: [(1, (2, 2, 8, 10)), (3, (10, 12, 18, 26)), (7, None)], 1: [(3, (0, 0, 6, 6))]},
        2: {0: [(7, (5, 5, 15, 20))]},
    }
    out = Written(root=root / "hope")
    k = 0
    for scene, images in plan.items():
        sd = split / f"{scene:06d}"
        gt, cam, info = {}, {}, {}
        for im, objs in images.items():
            stem = f"{im:06d}"
            rgb = rgb_image(h, w, 20 + k)
            (sd / "rgb").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(sd / "rgb" / f"{stem}.png")
            mm = depth_mm(h, w, k, hole=(h - 2, w - 3, h, w))
            save_png16(sd / "depth" / f"{stem}.png", np.rint(mm / depth_scale))
            mask = np.zeros((h, w), np.uint8)
            gt[str(im)], info[str(im)] = [], []
            for g, (obj, box) in enumerate(objs):
                m = np.zeros((h, w), np.uint8)
                if box is not None:
                    y0, x0, y1, x1 = box
                    m[y0:y1, x0:x1] = 255
                    mask[y0:y1, x0:x1] = obj
                (sd / "mask_visib").mkdir(parents=True, exist_ok=True)
                Image.fromarray(m, mode="L").save(sd / "mask_visib" / f"{stem}_{g:06d}.png")
                gt[str(im)].append(
                    {
                        "obj_id": obj,
                        "cam_R_m2c": [1, 0, 0, 0, 1, 0, 0, 0, 1],
                        "cam_t_m2c": [0, 0, 500],
                    }
                )
                bb = [box[1], box[0], box[3] - box[1], box[2] - box[0]] if box else [-1] * 4
                info[str(im)].append({"bbox_visib": bb, "px_count_visib": int((m > 0).sum())})
            cam[str(im)] = {
                "cam_K": [100.0, 0, w / 2, 0, 100.0, h / 2, 0, 0, 1],
                "depth_scale": depth_scale,
            }
            out.ids.append((scene, im))
            out.labels.append(sorted({f"obj_{o:06d}" for o, b in objs if b is not None}))
            out.masks.append(mask)
            out.depth_m.append(mm.astype(np.float32) / 1000)
            k += 1
        (sd / "scene_gt.json").write_text(json.dumps(gt))
        (sd / "scene_camera.json").write_text(json.dumps(cam))
        (sd / "scene_gt_info.json").write_text(json.dumps(info))
    return out


# ------------------------------------------------------------------ image folder
def write_folder(root: Path, size: tuple[int, int] = (16, 20), n: int = 3) -> Written:
    """root/images/*.png|jpg and root/depth/<stem>.npy (metres)."""
    h, w = size
    out = Written(root=root / "images")
    for k in range(n):
        rgb = rgb_image(h, w, 30 + k)
        (root / "images").mkdir(parents=True, exist_ok=True)
        suffix = ".png" if k % 2 == 0 else ".jpg"
        Image.fromarray(rgb).save(root / "images" / f"img{k:02d}{suffix}")
        d = depth_mm(h, w, k).astype(np.float32) / 1000
        (root / "depth").mkdir(parents=True, exist_ok=True)
        np.save(root / "depth" / f"img{k:02d}.npy", d)
        out.ids.append(f"img{k:02d}")
        out.rgb.append(rgb)
        out.depth_m.append(d)
    return out


# ------------------------------------------------------------------ rosbag2 bags (rosbags)
RS_RGB = "/camera/camera/color/image_raw"
RS_DEPTH = "/camera/camera/aligned_depth_to_color/image_raw"
RS_INFO = "/camera/camera/color/camera_info"


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def image_msg(ts, stamp_ns: int, arr: np.ndarray, encoding: str, frame: str = "camera"):
    """A rosbags ``sensor_msgs/msg/Image`` of ``arr`` (uint8 HxWx3 / HxW, uint16, float32)."""
    T = ts.types
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame
    )
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    data = arr.view(np.uint8).reshape(-1)
    return T["sensor_msgs/msg/Image"](
        header=header,
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=data.size // h,
        data=data,
    )


def camera_info_msg(ts, stamp_ns: int, h: int, w: int, f: float = 100.0):
    T = ts.types
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="camera"
    )
    k = np.array([f, 0, (w - 1) / 2, 0, f, (h - 1) / 2, 0, 0, 1], np.float64)
    p = np.array([f, 0, (w - 1) / 2, 0, 0, f, (h - 1) / 2, 0, 0, 0, 1, 0], np.float64)
    roi = T["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return T["sensor_msgs/msg/CameraInfo"](
        header=header,
        height=h,
        width=w,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k,
        r=np.eye(3).reshape(-1),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


T0 = 1_700_000_000_000_000_000  # a plausible epoch stamp (ns)
PERIOD = 33_333_333  # 30 Hz


def write_bag(
    path: Path,
    storage: str = "mcap",
    n: int = 6,
    size: tuple[int, int] = (12, 16),
    rgb_encoding: str = "bgr8",
    depth_encoding: str = "16UC1",
    missing_depth: tuple[int, ...] = (2,),
    camera_info: bool = True,
    extra_topics: bool = True,
) -> Written:
    """A RealSense-like rosbag2 bag: colour at 30 Hz, aligned depth stamped 4 ms later and
    logged 1-3 ms after its stamp (so depth and colour log times differ), camera_info with
    the colour stamp; frame ``missing_depth`` has no depth (one colour frame pairs with
    nothing). Written with rosbags' Writer in ``storage`` (``"mcap"`` or ``"sqlite3"``)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = _typestore()
    h, w = size
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    msgs = []  # (log time, topic, msg)
    out = Written(root=path)
    for i in range(n):
        stamp = T0 + i * PERIOD
        rgb = rgb_image(h, w, 40 + i)
        stored = rgb[..., ::-1] if rgb_encoding == "bgr8" else rgb
        msgs.append((stamp + 2_000_000, RS_RGB, image_msg(ts, stamp, stored, rgb_encoding)))
        if camera_info:
            msgs.append((stamp + 2_500_000, RS_INFO, camera_info_msg(ts, stamp, h, w)))
        if i in missing_depth:
            continue
        mm = depth_mm(h, w, i)
        if depth_encoding == "16UC1":
            dmsg = image_msg(ts, stamp + 4_000_000, mm, "16UC1")
        else:
            m = mm.astype(np.float32) / 1000
            m[mm == 0] = np.nan
            dmsg = image_msg(ts, stamp + 4_000_000, m, "32FC1")
        msgs.append((stamp + 4_000_000 + 1_000_000 * (1 + i % 3), RS_DEPTH, dmsg))
        out.ids.append(stamp)
        out.rgb.append(rgb)
        out.depth_m.append(mm.astype(np.float32) / 1000)
    if extra_topics:
        msgs.append((T0 + 1, "/tf_dummy", ts.types["std_msgs/msg/String"](data="x")))
    msgs.sort(key=lambda m: m[0])
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for log, topic, msg in msgs:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=ts)
            writer.write(conns[topic], log, ts.serialize_cdr(msg, msg.__msgtype__))
    return out


def write_episode(
    episodes_dir: Path,
    episode_id: str,
    labels: list[str],
    n: int = 4,
    size: tuple[int, int] = (12, 16),
    boxes: list[dict] | None = None,
    state: str | None = None,
    seed: int = 0,
) -> Written:
    """One episode folder written by the recorder's :class:`EpisodeWriter` (rgb8 + 16UC1
    + camera_info, all of a pair at the rgb stamp)."""
    from deal_ros.episodes.meta import EpisodeMeta, load_meta, save_meta
    from deal_ros.episodes.writer import EpisodeWriter

    ts = _typestore()
    h, w = size
    meta = EpisodeMeta(
        episode_id=episode_id, labels=list(labels), source="generator", boxes=list(boxes or [])
    )
    writer = EpisodeWriter(episodes_dir / episode_id, meta).open()
    out = Written(root=episodes_dir / episode_id)
    for i in range(n):
        stamp = T0 + (seed * 1000 + i) * PERIOD
        rgb = rgb_image(h, w, 60 + 7 * seed + i)
        mm = depth_mm(h, w, i)
        writer.write_pair(
            stamp,
            bytes(ts.serialize_cdr(image_msg(ts, stamp, rgb, "rgb8"), "sensor_msgs/msg/Image")),
            bytes(
                ts.serialize_cdr(
                    image_msg(ts, stamp + 3_000_000, mm, "16UC1"), "sensor_msgs/msg/Image"
                )
            ),
            bytes(ts.serialize_cdr(camera_info_msg(ts, stamp, h, w), "sensor_msgs/msg/CameraInfo")),
        )
        out.ids.append(stamp)
        out.rgb.append(rgb)
        out.depth_m.append(mm.astype(np.float32) / 1000)
    writer.update_counts(
        encodings={"rgb": "rgb8", "depth": "16UC1"}, size={"height": h, "width": w}
    )
    writer.close()
    if state is not None:
        meta = load_meta(out.root)
        meta.state = state
        save_meta(out.root, meta)
    out.labels = [list(labels)] * n
    return out
