"""The generated RGB-D table-top scenes: the camera stand-in of ``make demo`` and the benchmark
generator (numpy only, deterministic from a seed).

    from deal_ros.scene import SceneGenerator
"""

from deal_ros.scene.generator import Room, Scene, SceneGenerator

__all__ = ["Room", "Scene", "SceneGenerator"]
