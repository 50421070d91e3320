"""Run the real workflow in a throwaway copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPIED = [
    "Snakefile",
    "rules",
    "workflow",
    "config",
    "profiles",
    "envs",
    "src",
    "pyproject.toml",
    "README.md",
    "Makefile",
]


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow and library (its own src/, so edits there stay in the copy)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(
        "__pycache__", "*.egg-info", ".snakemake", "results"
    )
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: int = 600,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "--cores", "2", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs of a dry run, from Snakemake's 'Job stats' table: {rule: count}."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    match = re.search(r"Job stats:\n(.*?)\n\s*total\s+\d+", text, re.S)
    assert match, f"no job table in dry-run output:\n{text[-3000:]}"
    jobs = {}
    for line in match.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    return jobs


def job_reasons(proc: subprocess.CompletedProcess) -> dict[str, set[str]]:
    """{rule: reasons} of the jobs of a dry run, from Snakemake's per-job `reason:` lines."""
    reasons: dict[str, set[str]] = {}
    rule = None
    for line in (proc.stdout + proc.stderr).splitlines():
        match = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if match:
            rule = match.group(1)
        elif rule and line.strip().startswith("reason:"):
            reasons.setdefault(rule, set()).update(
                r.strip() for r in line.strip()[len("reason:") :].split(";")
            )
    return reasons


def params_changed_rules(workdir: Path, *args: str) -> set[str]:
    """Rules with a job whose params changed since its outputs were made.

    A dry run cannot say this: Snakemake gives a job whose input is rerun only that reason.
    `--summary` gives each output file its rule and status."""
    rows = snakemake(workdir, *args, "--summary").stdout.splitlines()
    header = rows[0].split("\t")
    rule, status = header.index("rule"), header.index("status")
    return {
        cells[rule]
        for cells in (row.split("\t") for row in rows[1:])
        if len(cells) == len(header) and cells[status] == "params changed"
    }
