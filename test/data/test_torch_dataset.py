"""The torch wrapper (Sample -> tensors, collate, DistributedSampler, transforms) and pseudo
depth from an ONNX model that the test builds with the onnx helper API."""

from __future__ import annotations

import pickle

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from deal_ros.data.adapters.base import DatasetError
from deal_ros.data.pseudo_depth import PseudoDepthDataset, PseudoDepthModel
from deal_ros.data.registry import build_dataset
from deal_ros.data.sample import Sample
from deal_ros.data.torch_dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TorchSampleDataset,
    collate_samples,
)
from deal_ros.data.transforms import ColorJitter, Compose, HorizontalFlip, RandomCrop

from fixtures_data import write_folder, write_voc


class ListDataset:
    """A SampleDataset over given samples (to control exact pixel content)."""

    def __init__(self, samples, classes=("a", "b")):
        self.samples, self.classes = samples, tuple(classes)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        s = self.samples[i]
        return Sample(
            rgb=s.rgb.copy(),
            labels=s.labels.copy(),
            depth=None if s.depth is None else s.depth.copy(),
            valid=None if s.valid is None else s.valid.copy(),
            mask=None if s.mask is None else s.mask.copy(),
            boxes=list(s.boxes),
            meta=dict(s.meta),
        )


def _sample(h=40, w=80, seed=0, hole=True):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = np.linspace(0.5, 2.0, h * w, dtype=np.float32).reshape(h, w)
    if hole:
        depth[5:15, 10:30] = 0.0
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 40:70] = 2
    return Sample(rgb=rgb, labels=np.array([0, 1], np.float32), depth=depth, mask=mask)


def _unnormalise(image: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((image * std + mean) * 255).permute(1, 2, 0).numpy()


# ------------------------------------------------------------------ tensors and fits
def test_item_tensors_resize():
    s = _sample()
    ds = TorchSampleDataset(ListDataset([s]), size=(20, 40))
    item = ds[0]
    assert item["image"].shape == (3, 20, 40) and item["image"].dtype == torch.float32
    assert item["depth"].shape == (1, 20, 40) and item["valid"].dtype == torch.bool
    assert item["mask"].shape == (20, 40) and item["mask"].dtype == torch.int64
    assert item["labels"].tolist() == [0.0, 1.0] and bool(item["has_depth"])
    expect = np.asarray(Image.fromarray(s.rgb).resize((40, 20), Image.BILINEAR), np.float32)
    np.testing.assert_allclose(_unnormalise(item["image"]), expect, atol=1e-3)
    d, v = item["depth"][0].numpy(), item["valid"][0].numpy()
    assert np.all(d[~v] == 0) and not v[3:7, 6:14].any()  # the hole stays a hole
    src = s.depth[s.depth > 0]
    assert d[v].min() >= src.min() - 1e-6 and d[v].max() <= src.max() + 1e-6  # no invented depth
    assert set(torch.unique(item["mask"]).tolist()) == {0, 2}
    assert torch.all(item["mask"][5:15, 20:35] == 2)


def test_fit_crop_and_pad():
    s = _sample(40, 80)
    s.meta["K"] = np.array([[50.0, 0, 39.5], [0, 50.0, 19.5], [0, 0, 1]])
    fitted = TorchSampleDataset(ListDataset([s]), size=32, fit="crop").sample(0)
    # the optical centre stays at the image centre; focal length scales with the image
    np.testing.assert_allclose(fitted.meta["K"], [[40, 0, 15.5], [0, 40, 15.5], [0, 0, 1]])
    crop = TorchSampleDataset(ListDataset([s]), size=32, fit="crop")[0]
    # cover 32x32 keeping the aspect: 32x64, then the centre 32 columns (16..48)
    full = np.asarray(Image.fromarray(s.rgb).resize((64, 32), Image.BILINEAR), np.float32)
    np.testing.assert_allclose(_unnormalise(crop["image"]), full[:, 16:48], atol=1e-3)
    pad = TorchSampleDataset(ListDataset([s]), size=(64, 64), fit="pad")[0]
    # fit inside: 32x64, padded 16 rows above and below
    assert torch.all(pad["mask"][:16] == 255) and torch.all(pad["mask"][48:] == 255)
    assert not pad["valid"][0, :16].any() and torch.all(pad["depth"][0, :16] == 0)
    assert pad["image"][:, :16].abs().max() < 0.01  # mean colour -> ~0 after normalisation
    assert torch.all(pad["mask"][16:48] != 255)
    with pytest.raises(DatasetError, match="fit='stretch': choose one of resize, crop, pad"):
        TorchSampleDataset(ListDataset([s]), size=32, fit="stretch")


def test_no_depth_no_mask_and_collate_errors():
    s = _sample(16, 16)
    bare = Sample(rgb=s.rgb, labels=s.labels)
    item = TorchSampleDataset(ListDataset([bare]), size=(8, 8))[0]
    assert not bool(item["has_depth"]) and not item["valid"].any()
    assert torch.all(item["depth"] == 0)
    assert not bool(item["has_mask"]) and torch.all(item["mask"] == 255)
    raw = TorchSampleDataset(ListDataset([_sample(16, 16), _sample(20, 16)]))
    with pytest.raises(
        DatasetError,
        match=r"images of different sizes .* give "
        r"TorchSampleDataset a size=",
    ):
        collate_samples([raw[0], raw[1]])


def test_distributed_sampler_and_workers(tmp_path):
    write_voc(tmp_path, depth="png")
    base = build_dataset(f"voc:{tmp_path / 'VOCdevkit'}", depth=tmp_path / "depth")
    ds = TorchSampleDataset(base, size=(16, 24))
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=1)
        sampler.set_epoch(0)
        loader = DataLoader(
            ds,
            batch_size=2,
            sampler=sampler,
            collate_fn=collate_samples,
            num_workers=1 if rank else 0,
        )
        for batch in loader:
            assert batch["image"].shape[1:] == (3, 16, 24)
            assert batch["labels"].shape[1] == 20 and batch["mask"].dtype == torch.int64
            assert len(batch["boxes"]) == len(batch["meta"]) == batch["image"].shape[0]
            seen += batch["index"].tolist()
    # 3 items over 2 ranks: DistributedSampler pads to 4, every item is seen
    assert len(seen) == 4 and set(seen) == {0, 1, 2}
    clone = pickle.loads(pickle.dumps(ds))  # spawned workers receive a pickled dataset
    torch.testing.assert_close(clone[1]["image"], ds[1]["image"])


def test_rgbd_transforms_are_reseeded_per_item_and_epoch():
    s = _sample(40, 80, hole=False)
    s.meta["K"] = np.array([[50.0, 0, 39.5], [0, 50.0, 19.5], [0, 0, 1]])
    flip = TorchSampleDataset(ListDataset([s]), transform=Compose([HorizontalFlip(p=1.0)]))[0]
    np.testing.assert_allclose(_unnormalise(flip["image"]), s.rgb[:, ::-1], atol=1e-3)
    assert torch.all(flip["mask"] == torch.from_numpy(s.mask[:, ::-1].copy()).long())
    aug = Compose([RandomCrop((24, 24)), ColorJitter()], seed=0)
    ds = TorchSampleDataset(
        ListDataset([s, _sample(40, 80, 1)]), size=(24, 24), transform=aug, seed=5
    )
    a, b = ds[0], ds[0]
    torch.testing.assert_close(a["image"], b["image"])  # same (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["image"], a["image"])  # another epoch, another draw
    ds.set_epoch(0)
    torch.testing.assert_close(ds[0]["image"], a["image"])
    nodepth = Sample(rgb=s.rgb, labels=s.labels, mask=s.mask)
    item = TorchSampleDataset(ListDataset([nodepth]), transform=aug)[0]
    assert not bool(item["has_depth"]) and item["image"].shape == (3, 24, 24)


# ------------------------------------------------------------------ pseudo depth
def _depth_model(path, static_hw=None, nhwc=False, op="mean"):
    """A graph mapping RGB to a depth-like map: 1 + mean over channels (dims named or fixed)."""
    h, w = static_hw or ("H", "W")
    shape = [1, h, w, 3] if nhwc else [1, 3, h, w]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, h, w])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = []
    src = "image"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["image"], ["chw"], perm=[0, 3, 1, 2]))
        src = "chw"
    nodes += [
        helper.make_node("ReduceMean", [src], ["m"], axes=[1], keepdims=1),
        helper.make_node("Add", ["m", "one"], ["depth"]),
    ]
    graph = helper.make_graph(nodes, "toy_depth", [x], [y], initializer=[one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_pseudo_depth_model_values(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    model = PseudoDepthModel(
        _depth_model(tmp_path / "d.onnx"), mean=(0, 0, 0), std=(1, 1, 1), multiple=1
    )
    depth, valid = model(rgb)
    assert depth.shape == (20, 28) and valid.all()
    np.testing.assert_allclose(depth, 1 + rgb.mean(axis=2) / 255, rtol=1e-5)
    disp = PseudoDepthModel(
        tmp_path / "d.onnx",
        mean=(0, 0, 0),
        std=(1, 1, 1),
        multiple=1,
        output="disparity",
        scale=2.0,
    )
    np.testing.assert_allclose(disp(rgb)[0], 2 / (1 + rgb.mean(axis=2) / 255), rtol=1e-5)
    # a fixed 16x16 (NHWC) input: resized in and out; a flat image stays flat
    fixed = PseudoDepthModel(
        _depth_model(tmp_path / "f.onnx", (16, 16), nhwc=True), mean=(0, 0, 0), std=(1, 1, 1)
    )
    flat = np.full((20, 28, 3), 51, np.uint8)
    d, v = fixed(flat)
    assert d.shape == (20, 28) and v.all()
    np.testing.assert_allclose(d, 1.2, rtol=1e-5)


def test_pseudo_depth_errors(tmp_path):
    with pytest.raises(
        DatasetError,
        match=r"pseudo depth: model file .*absent.onnx does not "
        r"exist .*none is downloaded",
    ):
        PseudoDepthModel(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(DatasetError, match=r"pseudo depth: cannot load ONNX model .*bad.onnx: "):
        PseudoDepthModel(bad)
    with pytest.raises(DatasetError, match=r"output='inverse': choose depth, disparity"):
        PseudoDepthModel(_depth_model(tmp_path / "d.onnx"), output="inverse")


def test_pseudo_depth_dataset_cache_and_registry(tmp_path):
    w = write_folder(tmp_path, n=2)
    model = _depth_model(tmp_path / "d.onnx")
    opts = {"mean": (0, 0, 0), "std": (1, 1, 1), "multiple": 1, "cache": tmp_path / "cache"}
    ds = build_dataset(f"folder:{w.root}", pseudo_depth=model, pseudo_depth_options=opts)
    assert isinstance(ds, PseudoDepthDataset) and len(ds) == 2
    s = ds[0]
    assert s.meta["depth_kind"] == "pseudo" and s.valid.all()
    np.testing.assert_allclose(s.depth, 1 + w.rgb[0].mean(axis=2) / 255, rtol=1e-5)
    cached = list((tmp_path / "cache").rglob("00000000.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.full((16, 20), 3.0, np.float32))  # later reads come from the cache
    assert np.all(ds[0].depth == 3.0)
    clone = pickle.loads(pickle.dumps(ds))  # the ORT session is reopened after unpickling
    np.testing.assert_allclose(clone[1].depth, ds[1].depth)
    real = build_dataset(f"folder:{w.root}", depth=tmp_path / "depth", pseudo_depth=model)
    np.testing.assert_array_equal(real[0].depth, w.depth_m[0] * real[0].valid)  # kept as is
    assert "depth_kind" not in real[0].meta
