"""Dataset adapters on tiny fixtures in their real on-disk formats: VOC, COCO, BOP, image
folder, the scene generator, and the registry's spec strings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from deal_ros.data.adapters.base import DatasetError
from deal_ros.data.adapters.voc import VOC_CLASSES
from deal_ros.data.registry import build_dataset, parse_spec
from deal_ros.data.sample import Sample, SampleDataset
from deal_ros.errors import DealError

from fixtures_data import write_bop, write_coco, write_folder, write_voc


def _check_sample(s: Sample, n_classes: int) -> None:
    assert s.rgb.dtype == np.uint8 and s.rgb.ndim == 3
    assert s.labels.dtype == np.float32 and s.labels.shape == (n_classes,)
    if s.depth is not None:
        assert s.depth.dtype == np.float32 and s.valid.dtype == bool
        assert np.all(s.depth[~s.valid] == 0)


# ------------------------------------------------------------------ VOC
def test_voc_train_split_labels_masks_depth(tmp_path):
    w = write_voc(tmp_path, depth="png")
    ds = build_dataset(f"voc:{tmp_path / 'VOCdevkit'}", depth=tmp_path / "depth")
    assert isinstance(ds, SampleDataset)
    assert ds.classes == VOC_CLASSES and len(ds) == 3
    for i in range(3):
        s = ds[i]
        _check_sample(s, 20)
        k = w.ids.index(s.meta["id"])
        assert [VOC_CLASSES[j] for j in np.flatnonzero(s.labels)] == sorted(
            w.labels[k], key=VOC_CLASSES.index
        )
        if w.masks[k] is None:
            assert s.mask is None  # xml-only image: labels from Annotations/*.xml
        else:
            np.testing.assert_array_equal(s.mask, w.masks[k])
        # 16-bit PNG millimetres -> metres, 0 -> invalid
        np.testing.assert_allclose(s.depth[s.valid], w.depth_m[k][s.valid], rtol=1e-6)
        assert not s.valid[0:3, 0:4].any() and s.valid[5:, 5:].all()
    assert len(ds[0].boxes) == 1 and ds[0].boxes[0].class_id == VOC_CLASSES.index("cat") + 1
    b = ds[0].boxes[0]
    assert (b.x0, b.y0, b.x1, b.y1) == (3, 2, 14, 12)  # 1-based inclusive -> pixel edges
    assert len(build_dataset(f"voc:{w.root}", split="val")) == 1


def test_voc_restricted_classes_and_npy_depth(tmp_path):
    w = write_voc(tmp_path, depth="npy")
    ds = build_dataset(f"voc:{w.root}", classes=["person", "dog"], depth=tmp_path / "depth")
    assert ds.classes == ("person", "dog")
    s = ds[1]  # dog + person
    np.testing.assert_array_equal(s.labels, [1, 1])
    truth = w.masks[1]
    assert np.all(s.mask[truth == 12] == 2) and np.all(s.mask[truth == 15] == 1)
    assert np.all(s.mask[truth == 255] == 255)
    s0 = ds[0]  # a cat only: not in the classes -> background, no label
    np.testing.assert_array_equal(s0.labels, [0, 0])
    assert set(np.unique(s0.mask)) <= {0, 255}
    np.testing.assert_allclose(s0.depth[s0.valid], w.depth_m[0][s0.valid], rtol=1e-6)
    ign = build_dataset(f"voc:{w.root}", classes=["dog"], others="ignore")[0]
    assert np.all(ign.mask[w.masks[0] == 8] == 255)


def test_voc_errors(tmp_path):
    w = write_voc(tmp_path, depth=None)
    with pytest.raises(
        DatasetError,
        match=r"class 'unicorn' is not in this dataset; known "
        r"classes: aeroplane, bicycle",
    ):
        build_dataset(f"voc:{w.root}", classes=["cat", "unicorn"])
    with pytest.raises(
        DatasetError,
        match=r"split file .*ImageSets/Segmentation/trainval.txt "
        r"does not exist",
    ):
        build_dataset(f"voc:{w.root}", split="trainval")
    with pytest.raises(
        DatasetError,
        match=r"no labels for image '2007_000004': .*"
        r"SegmentationClass/2007_000004.png does not exist",
    ):
        build_dataset(f"voc:{w.root}", labels_from="masks")
    with pytest.raises(DatasetError, match=r"voc depth: directory .*nodepth does not exist"):
        build_dataset(f"voc:{w.root}", depth=tmp_path / "nodepth")
    (tmp_path / "depth").mkdir()
    with pytest.raises(DatasetError, match=r"depth: no file .*2007_000001\{.png,.npy"):
        build_dataset(f"voc:{w.root}", depth=tmp_path / "depth")[0]
    xml = w.root / "Annotations" / "2007_000004.xml"
    xml.write_text(xml.read_text().replace("bottle", "unicorn"))
    with pytest.raises(
        DatasetError,
        match=r"label 'unicorn' in .*2007_000004.xml is not in the "
        r"class list; known classes: aeroplane",
    ):
        build_dataset(f"voc:{w.root}")[2]
    Image.fromarray(np.full((24, 32), 40, np.uint8), mode="L").save(
        w.root / "SegmentationClass" / "2007_000001.png"
    )
    with pytest.raises(DatasetError, match=r"mask .*2007_000001.png: class id 40 is outside"):
        build_dataset(f"voc:{w.root}")[0]
    with pytest.raises(DatasetError, match=r"unknown option\(s\) depht; accepted: split"):
        build_dataset(f"voc:{w.root}", depht="x")
    with pytest.raises(DatasetError, match=r"voc: directory .*missing does not exist"):
        build_dataset(f"voc:{tmp_path / 'missing'}")


# ------------------------------------------------------------------ COCO
def test_coco_labels_boxes_polygon_masks_depth(tmp_path):
    w = write_coco(tmp_path)
    ds = build_dataset(f"coco:{w.extra['json']}", depth=tmp_path / "depth")
    assert ds.classes == ("person", "dog", "cup")  # categories in id order (1, 18, 47)
    assert len(ds) == 3
    for i, s in enumerate(ds):
        _check_sample(s, 3)
        assert [ds.classes[j] for j in np.flatnonzero(s.labels)] == sorted(
            w.labels[i], key=ds.classes.index
        )
        np.testing.assert_allclose(s.depth[s.valid], w.depth_m[i][s.valid], rtol=1e-6)
        assert not s.valid[:3, :4].any()
    s = ds[0]
    cup = ds.classes.index("cup") + 1
    assert next((b.class_id, b.x0, b.y0, b.x1, b.y1) for b in s.boxes) == (cup, 2, 2, 12, 10)
    assert np.all(s.mask[3:9, 3:11] == cup)  # the polygon's inside
    assert s.mask[20, 5] == 0 and s.mask[6, 33] == ds.classes.index("person") + 1
    assert np.all(ds[2].mask == 0) and ds[2].labels.sum() == 0 and ds[2].boxes == []
    only_dog = build_dataset(f"coco:{w.extra['json']}", classes=["dog"], skip_empty=True)
    assert len(only_dog) == 1 and only_dog[0].labels.tolist() == [1.0]
    nomask = build_dataset(f"coco:{w.extra['json']}", masks="false")
    assert nomask[0].mask is None and nomask[0].depth is None


def test_coco_rle_without_pycocotools_is_one_clear_line(tmp_path, monkeypatch):
    import sys

    w = write_coco(tmp_path, with_rle=True)
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # import fails as if not installed
    ds = build_dataset(f"coco:{w.extra['json']}")
    assert ds[0].mask is not None  # polygons alone: PIL
    with pytest.raises(
        DatasetError,
        match=r"coco annotation 5 in .*instances_val2017.json is "
        r"RLE-encoded; decoding RLE needs pycocotools",
    ):
        ds[1]
    s = build_dataset(f"coco:{w.extra['json']}", masks=False)[1]
    assert s.labels.tolist() == [1.0, 1.0, 0.0]  # labels and boxes need no mask decoding


def test_coco_rle_with_pycocotools(tmp_path):
    pytest.importorskip("pycocotools")
    w = write_coco(tmp_path, with_rle=True)
    s = build_dataset(f"coco:{w.extra['json']}")[1]
    assert np.all(s.mask[w.extra["rle_mask"]] == 1)  # crowd 'person'


def test_polygon_fallback_fills_pixel_centres(monkeypatch):
    import sys

    from deal_ros.data.adapters.coco import polygon_mask

    rng = np.random.default_rng(0)
    polys = [[[2, 2, 12, 2, 12, 10, 2, 10]], [[20, 5, 35, 5, 35, 25]]] + [
        [list(rng.uniform(-5, 45, 2 * int(rng.integers(3, 9))))] for _ in range(20)
    ]
    reference = None
    if "pycocotools" in sys.modules or _has_pycocotools():
        reference = [polygon_mask(p, 30, 40) for p in polys]
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    ours = [polygon_mask(p, 30, 40) for p in polys]
    square = np.zeros((30, 40), bool)
    square[2:10, 2:12] = True  # edges on integers: exactly the pixels whose centres are inside
    np.testing.assert_array_equal(ours[0], square)
    tri = ours[1]
    assert tri[6, 34] and not tri[6, 20] and tri[20, 33] and not tri[20, 30] and not tri[4, 34]
    if reference is not None:  # pycocotools and the fallback differ only along the outline
        for poly, a, b in zip(polys, reference, ours):
            ys, xs = np.nonzero(a != b)
            assert np.all(_distance_to_outline(poly[0], xs + 0.5, ys + 0.5) <= 1.0)
            assert (a != b).sum() < 0.2 * max(a.sum(), 1)


def _distance_to_outline(poly, px, py):
    x, y = np.asarray(poly[0::2]), np.asarray(poly[1::2])
    ax, ay, bx, by = x, y, np.roll(x, -1), np.roll(y, -1)
    dx, dy = bx - ax, by - ay
    t = ((px[:, None] - ax) * dx + (py[:, None] - ay) * dy) / np.maximum(dx * dx + dy * dy, 1e-12)
    t = np.clip(t, 0, 1)
    d = np.hypot(ax + t * dx - px[:, None], ay + t * dy - py[:, None])
    return d.min(axis=1) if len(px) else np.zeros(0)


def _has_pycocotools() -> bool:
    try:
        import pycocotools.mask  # noqa: F401
    except ImportError:
        return False
    return True


def test_coco_errors(tmp_path):
    w = write_coco(tmp_path)
    path = w.extra["json"]
    with pytest.raises(DatasetError, match=r"coco annotations: file .*nope.json does not exist"):
        build_dataset(f"coco:{tmp_path / 'nope.json'}")
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 99
    bad = tmp_path / "annotations" / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(
        DatasetError,
        match=r"label \(category_id 99\) of annotation 1 in "
        r".*bad.json is not in the categories; known classes",
    ):
        build_dataset(f"coco:{bad}", images=tmp_path / "val2017")
    with pytest.raises(DatasetError, match=r"image '000000000001.jpg' of .*bad.json not found"):
        data["annotations"][0]["category_id"] = 47
        bad.write_text(json.dumps(data))
        build_dataset(f"coco:{bad}")
    (tmp_path / "val2017" / "000000000002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"image: file .*000000000002.jpg does not exist"):
        build_dataset(f"coco:{path}")[1]


# ------------------------------------------------------------------ BOP
def test_bop_labels_depth_scale_masks(tmp_path):
    w = write_bop(tmp_path, depth_scale=0.1)
    ds = build_dataset(f"bop:{w.root}", split="val")
    assert ds.classes == ("obj_000001", "obj_000003", "obj_000007")
    assert len(ds) == 3
    for i, s in enumerate(ds):
        _check_sample(s, 3)
        assert [ds.classes[j] for j in np.flatnonzero(s.labels)] == w.labels[i]
        # raw x depth_scale (0.1) = mm -> metres; 0 stays invalid
        np.testing.assert_allclose(s.depth[s.valid], w.depth_m[i][s.valid], atol=1e-4)
        assert not s.valid[-2:, -3:].any() and s.valid[:-2].all()
        lut = np.array([0, 1, 0, 2, 0, 0, 0, 3], np.uint8)
        np.testing.assert_array_equal(s.mask, lut[w.masks[i]])
        assert s.meta["K"].shape == (3, 3)
    # object 7 of the first image is listed in scene_gt but fully occluded: no label, no box
    assert ds[0].labels.tolist() == [1.0, 1.0, 0.0] and len(ds[0].boxes) == 2
    assert (ds[0].boxes[1].x0, ds[0].boxes[1].y0, ds[0].boxes[1].x1) == (12, 10, 26)
    named = build_dataset(
        f"bop:{w.root / 'val'}",
        names={1: "soup", 3: "milk", 7: "tuna"},
        classes=["tuna"],
        scenes="2",
    )
    assert named.classes == ("tuna",) and len(named) == 1 and named[0].labels.tolist() == [1.0]


def test_bop_errors(tmp_path):
    w = write_bop(tmp_path)
    with pytest.raises(
        DatasetError,
        match=r"label \(obj_id 3\) in .*000001/scene_gt.json is "
        r"not in names=; known classes: soup",
    ):
        build_dataset(f"bop:{w.root}", names={1: "soup", 7: "tuna"})
    with pytest.raises(
        DatasetError,
        match=r"no scene folder with scene_gt.json in .*hope "
        r"\(and no split folder .*hope/test\)",
    ):
        build_dataset(f"bop:{w.root}", split="test")
    with pytest.raises(DatasetError, match=r"bop: min_depth='near' is not a number"):
        build_dataset(f"bop:{w.root}", min_depth="near")
    with pytest.raises(DatasetError, match=r"scene\(s\) \[9\] not found"):
        build_dataset(f"bop:{w.root}", scenes=[9])
    (w.root / "val" / "000002" / "depth" / "000000.png").unlink()
    with pytest.raises(DatasetError, match=r"bop depth: no file .*000002/depth/000000"):
        build_dataset(f"bop:{w.root}")[2]
    (w.root / "val" / "000001" / "scene_camera.json").unlink()
    with pytest.raises(DatasetError, match=r"file .*000001/scene_camera.json does not exist"):
        build_dataset(f"bop:{w.root}")


# ------------------------------------------------------------------ folder, scene, registry
def test_folder_images_and_npy_depth(tmp_path):
    w = write_folder(tmp_path, n=3)
    ds = build_dataset(f"folder:{w.root}", depth=tmp_path / "depth", classes=["mug"])
    assert len(ds) == 3 and ds.classes == ("mug",)
    for i, s in enumerate(ds):
        _check_sample(s, 1)
        assert s.mask is None and s.labels.tolist() == [0.0]
        np.testing.assert_allclose(s.depth[s.valid], w.depth_m[i][s.valid])
        assert not s.valid[:3, :4].any()
    np.testing.assert_array_equal(ds[0].rgb, w.rgb[0])  # png: lossless
    assert ds[-1].meta["path"].endswith("img02.png")
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(DatasetError, match=r"folder: no images .* in .*depth"):
        build_dataset(f"folder:{tmp_path / 'depth'}")


def test_scene_adapter_deterministic(tmp_path):
    ds = build_dataset("scene:n=4,seed=3,size=40x56")
    assert len(ds) == 4 and ds.classes == ("mug", "box", "ball")
    s = ds[2]
    _check_sample(s, 3)
    assert s.rgb.shape == (40, 56, 3) and s.mask.shape == (40, 56)
    ids = {int(v) for v in np.unique(s.mask)} - {0, 255}
    assert {int(j) + 1 for j in np.flatnonzero(s.labels)} == ids
    np.testing.assert_array_equal(s.rgb, build_dataset("scene:", n=4, seed=3, size=(40, 56))[2].rgb)
    assert not np.array_equal(s.rgb, build_dataset("scene:n=4,seed=4,size=40x56")[2].rgb)
    assert build_dataset("scene:n=2,size=32x32", classes=["ball"]).classes == ("ball",)
    with pytest.raises(DatasetError, match=r"scene: SceneGenerator: class 'unicorn' has no shape"):
        build_dataset("scene:n=2", classes=["unicorn"])
    with pytest.raises(DatasetError, match=r"expected key=value, got 'n'"):
        build_dataset("scene:n")
    with pytest.raises(DatasetError, match=r"scene size=.*expected H x W"):
        build_dataset("scene:size=big")


def test_registry_specs_and_errors(tmp_path):
    assert parse_spec("scene:n=3,seed=1") == ("scene", None, {"n": "3", "seed": "1"})
    assert parse_spec("voc:/data/VOC2012") == ("voc", "/data/VOC2012", {})
    with pytest.raises(DealError, match=r"dataset '.*nowhere': no such file or directory"):
        build_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(
        DatasetError,
        match=r"no episode.yaml in it or its sub-folders; for "
        r"other sources use a prefix: bag:PATH",
    ):
        build_dataset(str(tmp_path))
    with pytest.raises(DatasetError, match=r"no path after 'voc:'"):
        build_dataset("voc:")
