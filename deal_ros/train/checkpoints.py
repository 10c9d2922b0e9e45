"""Moved to :mod:`deal_ros.engine.checkpoints` (a deprecated path: see ``deal_ros._moved``)."""

from deal_ros._moved import alias

alias(__name__, "deal_ros.engine.checkpoints")
