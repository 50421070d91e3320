"""The tree is linted and formatted by the field's tools: ruff for Python (lint rules and
format in pyproject.toml), Snakemake's own --lint and snakefmt for the workflow."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("snakefmt", "--check", "Snakefile", "rules"),
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_tree_is_clean(command):
    _run(str(BIN / command[0]), *command[1:])


def test_snakemake_lint_finds_nothing():
    _run(str(BIN / "snakemake"), "--lint")
