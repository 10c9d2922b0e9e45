"""The hard multi-object scenes of ``deal_ros.scene`` (``scene:mode=multi``) as a VOC folder
with a 16-bit depth folder, the format users' datasets come in (``voc:DIR``).

    python bench/scene_voc.py OUT [--seed 101] [--train 160] [--val 60] [--size 240x320]

Train and val are disjoint scene indices of one generator seed. ``bench/README.md`` reports
DEAL on vs off on ``--seed 101`` (dataset A) and on ``bench/slab_scenes.py --seed 0`` (B, the
independently written generator).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from deal_ros.scene.generator import SceneGenerator
    from deal_ros.scene.voc_writer import write_scene_voc

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=101)
    p.add_argument("--train", type=int, default=160)
    p.add_argument("--val", type=int, default=60)
    p.add_argument("--size", default="240x320")
    a = p.parse_args()
    h, w = (int(x) for x in a.size.lower().split("x"))
    gen = SceneGenerator.from_mode("multi", size=(h, w), seed=a.seed)
    write_scene_voc(gen, a.out, a.train, a.val)
    print(f"multi-object scenes: {a.train} train + {a.val} val at {h}x{w} -> {a.out} "
          f"(vocabulary {','.join(gen.classes)})")  # fmt: skip


if __name__ == "__main__":
    main()
