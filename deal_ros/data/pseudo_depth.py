"""Pseudo depth for RGB-only data from a user-supplied monocular depth ONNX model.

No depth model ships with deal_ros and none is downloaded: give the path of an ONNX export
(MiDaS, Depth Anything, ...). ONNX Runtime only (no torch), so it runs in data workers and on
machines without the training extras.

Pre-processing: RGB in 0..1, ``(x - mean) / std`` per channel (ImageNet statistics by
default), resized (bilinear) to the model's input size: the static ``H x W`` of its input,
else ``input_size=``, else the image's own size rounded up to a multiple of ``multiple``
(32 by default). Layout NCHW unless the input's last dimension is 3 (NHWC). A ``uint8``
input gets the raw 0..255 pixels instead.

Post-processing: the first output, squeezed to ``(h, w)``, resized (bilinear, invalid pixels
never leak) to the image size. ``output="depth"``: the values are depth; ``"disparity"``
(MiDaS-style inverse depth): depth = 1 / value. Times ``scale``. Non-finite or ``<= 0``
values are invalid. Monocular depth is relative: only its edges matter to DEAL, so the unit
is not metres unless the model is metric (``meta["depth_kind"] = "pseudo"``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.core.depth import resize_depth
from deal_ros.data.adapters.base import DatasetError, IndexedDataset, as_size
from deal_ros.data.sample import Sample, SampleDataset

__all__ = ["PseudoDepthDataset", "PseudoDepthModel"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUTS = ("depth", "disparity")


def _resize_rgb(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == hw:
        return rgb
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.BILINEAR))


class PseudoDepthModel:
    """``model(rgb (H,W,3) uint8) -> (depth (H,W) float32, valid (H,W) bool)``.

    The ONNX Runtime session is not pickled and is reopened in a forked child, so the model
    can travel to DataLoader worker processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        input_size: Any = None,
        multiple: int = 32,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        output: str = "depth",
        scale: float = 1.0,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DatasetError(
                f"pseudo depth: model file {self.path} does not exist (give the path of a "
                "monocular depth ONNX model; none is downloaded)"
            )
        if output not in OUTPUTS:
            raise DatasetError(f"pseudo depth: output={output!r}: choose {', '.join(OUTPUTS)}")
        self.input_size = as_size(input_size, "pseudo depth input_size")
        self.multiple = int(multiple)
        self.mean = np.asarray(mean, np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, np.float32).reshape(1, 1, 3)
        self.output, self.scale = output, float(scale)
        self.providers = list(providers) if providers else None
        self.threads = threads
        self._session = None
        self._pid = 0
        self._open()  # fail now, with the file named, rather than in a worker later

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_session"] = None
        return state

    def _open(self):
        if self._session is not None and self._pid == os.getpid():
            return self._session
        import onnxruntime as ort

        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
        providers = self.providers or ["CPUExecutionProvider"]
        try:
            sess = ort.InferenceSession(str(self.path), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatasetError(
                f"pseudo depth: cannot load ONNX model {self.path}: {first}"
            ) from None
        inp = sess.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4:
            raise DatasetError(
                f"pseudo depth: model {self.path} input '{inp.name}' has shape {shape}; "
                "expected (N,3,H,W) or (N,H,W,3)"
            )
        self.nhwc = shape[3] == 3 and shape[1] != 3
        hw = shape[1:3] if self.nhwc else shape[2:4]
        self.static_hw = tuple(hw) if all(isinstance(v, int) and v > 0 for v in hw) else None
        self.uint8_input = inp.type == "tensor(uint8)"
        self.input_name = inp.name
        self._session, self._pid = sess, os.getpid()
        return sess

    def _model_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        if self.static_hw is not None:
            return self.static_hw
        if self.input_size is not None:
            return self.input_size
        m = max(self.multiple, 1)
        return (-(-hw[0] // m) * m, -(-hw[1] // m) * m)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sess = self._open()
        h, w = rgb.shape[:2]
        x = _resize_rgb(rgb, self._model_hw((h, w)))
        if self.uint8_input:
            x = np.ascontiguousarray(x, np.uint8)
        else:
            x = (x.astype(np.float32) / 255.0 - self.mean) / self.std
        x = x[None] if self.nhwc else x.transpose(2, 0, 1)[None]
        out = np.asarray(sess.run(None, {self.input_name: np.ascontiguousarray(x)})[0])
        out = np.squeeze(out)
        if out.ndim != 2:
            raise DatasetError(
                f"pseudo depth: model {self.path} output has shape {out.shape}; expected one "
                "map (N,H,W), (N,1,H,W) or (H,W) for one image"
            )
        out = out.astype(np.float32)
        if self.output == "disparity":
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.where(out > 0, 1.0 / out, 0.0).astype(np.float32)
        out *= np.float32(self.scale)
        valid = np.isfinite(out) & (out > 0)
        depth, valid = resize_depth(out, valid, (h, w), mode="bilinear")
        return depth, valid


class PseudoDepthDataset(IndexedDataset):
    """Wraps a :class:`SampleDataset`: samples without depth get the model's depth.

    ``overwrite=True`` replaces existing depth too. ``cache=DIR`` stores each map as ``.npy``
    (keyed by the source, the model file and its options) so later epochs skip the model."""

    def __init__(
        self,
        dataset: SampleDataset,
        model: str | Path | PseudoDepthModel,
        *,
        overwrite: bool = False,
        cache: str | Path | None = None,
        **model_opts: Any,
    ) -> None:
        self.dataset = dataset
        self.model = (
            model if isinstance(model, PseudoDepthModel) else PseudoDepthModel(model, **model_opts)
        )
        self.classes = tuple(dataset.classes)
        self.source = getattr(dataset, "source", type(dataset).__name__)
        self.overwrite = overwrite
        self.cache = None
        if cache is not None:
            st = self.model.path.stat()
            key = repr(
                (
                    self.source,
                    str(self.model.path.resolve()),
                    st.st_size,
                    st.st_mtime_ns,
                    sorted(model_opts.items()),
                )
            )
            self.cache = Path(cache) / hashlib.sha1(key.encode()).hexdigest()[:16]
            self.cache.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.dataset)

    def _depth(self, index: int, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        path = self.cache / f"{index:08d}.npy" if self.cache is not None else None
        if path is not None and path.is_file():
            depth = np.load(path)
            if depth.shape == rgb.shape[:2]:
                return depth, depth > 0
        depth, valid = self.model(rgb)
        if path is not None:
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, depth)
            tmp.replace(path)
        return depth, valid

    def _load(self, index: int) -> Sample:
        s = self.dataset[index]
        if s.depth is not None and not self.overwrite:
            return s
        s.depth, s.valid = self._depth(index, s.rgb)
        s.meta = {**s.meta, "depth_kind": "pseudo", "pseudo_depth_model": str(self.model.path)}
        return s
