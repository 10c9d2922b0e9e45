"""Training throughput of deal_ros's trainer vs a bare PyTorch loop: same model, data, loss.

Both arms train the same CAM net (MobileNetV2, output stride 8, random init) with the same
objective (multi-label soft margin + DEAL) on the same cached generated RGB-D scenes, the same
batch size and the same SGD settings. The bare loop is the minimum: a DataLoader over the same
items, forward, loss, backward, step. The trainer adds the LR schedule, AMP/DDP plumbing, the
progress bar and metrics.jsonl (the run is one epoch long, so no end-of-epoch checkpoint falls
inside the timed steps; checkpoint cadence is a user setting). Arms alternate in ABBA order
(bare, trainer, trainer, bare, ...) so a busy machine slows both alike; the ratios of the best
and of the median throughputs are printed (best-of-N is the steadier estimate on a shared
machine).

    python bench/bench_train.py            # default, < 1 min on 2 free cores
    python bench/bench_train.py --full     # larger images, more steps and repeats
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from deal_ros.engine.loop import Trainer
from deal_ros.train.config import load_config
from deal_ros.train.data import EpochBatches, TrainItems, open_dataset
from deal_ros.train.stages.cam import cam_stage


def make(args, out: Path):
    h, w = args.size
    cfg = load_config("scene", [
        f"data=scene:n={args.images},seed=0,size={h}x{w}", f"input.height={h}",
        f"input.width={w}", "model.pretrained=none", f"train.batch_size={args.batch}",
        "train.num_workers=0", f"train.max_steps={args.steps}", "train.log_every=5",
        f"out={out}", "report=false", "cache=true", "optim.name=sgd",
    ])  # fmt: skip
    data = open_dataset(cfg.data, cfg)
    items = TrainItems(data, (h, w), cfg.augment, cfg.seed, cache=True)
    items.prefill()
    return cfg, items


def bare_loop(cfg, items, steps: int) -> float:
    """images/s of the plainest loop over the same items, model and objective."""
    stage = cam_stage(cfg, items, len(items.samples.classes))
    model, objective = stage.model.train(), stage.loss_fn
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                          weight_decay=cfg.optim.weight_decay)  # fmt: skip
    batches = EpochBatches(len(items), cfg.train.batch_size, cfg.seed)
    loader = torch.utils.data.DataLoader(items, batch_sampler=batches, num_workers=0)
    done, epoch, t0 = 0, 0, time.perf_counter()
    while done < steps:
        batches.start(epoch)
        for batch in loader:
            loss = objective(model, batch, done)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
        epoch += 1
    return steps * cfg.train.batch_size / (time.perf_counter() - t0)


def trainer(cfg, items, out: Path, k: int) -> float:
    stage = cam_stage(cfg, items, len(items.samples.classes))
    run_dir = out / f"trainer-{k}"
    run_dir.mkdir(parents=True)
    return Trainer(cfg, stage, run_dir, progress=False).fit().images_per_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="96x128 images, 30 steps, 4 repeats")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args()
    args.size = (96, 128) if args.full else (64, 80)
    args.steps, args.repeats = (30, 4) if args.full else (12, 4)
    args.batch = 8
    args.images = args.batch * args.steps  # one epoch: no end-of-epoch checkpoint is timed
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cfg, items = make(args, out)
        bare_loop(cfg, items, 2)  # warm-up: allocator, kernels
        bare, ours = [], []
        for k in range(args.repeats):  # ABBA order: neither arm always runs second
            if k % 2 == 0:
                bare.append(bare_loop(cfg, items, args.steps))
                ours.append(trainer(cfg, items, out, k))
            else:
                ours.append(trainer(cfg, items, out, k))
                bare.append(bare_loop(cfg, items, args.steps))
    b, t = statistics.median(bare), statistics.median(ours)
    bb, tb = max(bare), max(ours)
    h, w = args.size
    print(f"train throughput, CAM net + DEAL, {h}x{w}, batch {args.batch}, {args.steps} steps, "
          f"{args.repeats} repeats, {args.threads} thread(s)")  # fmt: skip
    print(
        f"  bare PyTorch loop   {b:8.2f} images/s   (runs: {', '.join(f'{x:.2f}' for x in bare)})"
    )
    print(
        f"  deal_ros Trainer    {t:8.2f} images/s   (runs: {', '.join(f'{x:.2f}' for x in ours)})"
    )
    print(f"  ratio trainer / bare: best {tb / bb:.3f}, median {t / b:.3f}")


if __name__ == "__main__":
    main()
