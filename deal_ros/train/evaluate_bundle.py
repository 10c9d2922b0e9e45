"""Moved to :mod:`deal_ros.eval.bundle` (a deprecated path: see ``deal_ros._moved``)."""

from deal_ros._moved import alias

alias(__name__, "deal_ros.eval.bundle")
