"""The `deal` command: help lists every subcommand; unknown or unlanded ones fail loudly."""

from __future__ import annotations

import subprocess
import sys

from deal_ros.cli import SUBCOMMANDS, _load


def run_deal(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deal_ros.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_subcommand():
    result = run_deal("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert f"    {name}" in result.stdout


def test_no_command_prints_help_and_fails():
    result = run_deal()
    assert result.returncode == 2
    assert "usage: deal" in result.stdout


def test_unknown_command_is_rejected():
    result = run_deal("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_every_subcommand_has_help_or_says_it_has_not_landed():
    for name, (_help, module) in SUBCOMMANDS.items():
        result = run_deal(name, "--help")
        if _load(module) is None:
            assert result.returncode == 2, name
            assert result.stderr.strip() == f"deal {name}: not available in this release yet"
        else:
            assert result.returncode == 0, (name, result.stderr)
            assert f"usage: deal {name}" in result.stdout
