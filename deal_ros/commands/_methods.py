"""Which training method a ``deal`` command hands a config or a run folder to.

The methods live side by side and never import each other: DEAL (stages ``cam``/``seg``,
``deal_ros.train``) and the box method (stage ``box``, ``deal_ros.instance``); the choice
between them is made here, above both. A run folder's method is its config.yaml's ``stage``;
a ``deal train`` call's is its config file's ``stage``, a ``stage=`` override, the run that
``resume=``/``run=`` names, or (``resume=true`` alone) the newest checkpoint's. A third method
adds its stage here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DEAL, BOX = "deal", "box"


def train_method(config: str | None, overrides: Sequence[str]) -> str:
    """The method of ``deal train --config CONFIG OVERRIDES`` (torch-free)."""
    from deal_ros.instance.config import is_box_config

    return BOX if is_box_config(config, overrides) else DEAL


def run_method(run_dir: str | Path) -> str:
    """The method that wrote a run folder (``deal eval run=``, ``deal export run=``)."""
    from deal_ros.engine.runfolder import stage_of_run
    from deal_ros.instance.config import STAGE

    return BOX if stage_of_run(run_dir) == STAGE else DEAL
