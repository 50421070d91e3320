"""Facts about where a job runs, for run records: the code version (git commit and dirty
flag), package versions, host, SLURM job, device and the time.

Nothing here imports torch, numpy or snakemake: package versions come from
``importlib.metadata``, and torch is consulted only if the job has already imported it.
Nothing here raises because a fact is unknown: the field is ``None`` instead.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "PACKAGES",
    "SLURM_VARS",
    "device_info",
    "git_info",
    "host_info",
    "package_versions",
    "slurm_info",
    "utc_now_iso",
]

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "snakemake",
    "weightspace",
)

_MAX_CHANGED_PATHS = 50
_GIT_TIMEOUT_S = 30

#: Run-record field -> environment variable of a SLURM job.
SLURM_VARS = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "partition": "SLURM_JOB_PARTITION",
    "cluster_name": "SLURM_CLUSTER_NAME",
    "nodelist": "SLURM_JOB_NODELIST",
}


def utc_now_iso() -> str:
    """Current time as ISO 8601 in UTC with millisecond precision, e.g. ``2026-05-09T07:35:25.123Z``."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        timeout=_GIT_TIMEOUT_S,
        # Never prompt (credential helpers, pagers) inside a batch job.
        env={
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_PAGER": "cat",
            "LC_ALL": "C",
        },
        stdin=subprocess.DEVNULL,
    )


def _first_line(raw: bytes) -> str:
    lines = raw.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else ""


def git_info(path: str | os.PathLike[str] | None = None) -> dict:
    """Commit and dirty flag of the git repository containing ``path`` (default: cwd).

    Returns ``{"commit", "dirty", "root", "changed_paths", "reason"}``. ``dirty`` is true when
    tracked files differ from HEAD *or* untracked, non-ignored files exist (a new module that is
    not committed also makes the commit insufficient to reproduce the run); ``changed_paths``
    lists up to 50 of them. Without git, outside a repository, or before the first commit, the
    unknown fields are ``None`` and ``reason`` says why; this never raises.
    """
    info: dict[str, Any] = {
        "commit": None,
        "dirty": None,
        "root": None,
        "changed_paths": [],
        "reason": None,
    }
    start = Path(path) if path is not None else Path.cwd()
    if start.is_file():
        start = start.parent
    if not start.is_dir():
        info["reason"] = f"directory does not exist: {start}"
        return info
    try:
        top = _git(start, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            info["reason"] = f"not a git repository ({_first_line(top.stderr)})"
            return info
        root = Path(top.stdout.decode().strip())
        info["root"] = str(root)
        head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        if head.returncode == 0:
            info["commit"] = head.stdout.decode().strip()
        else:
            info["reason"] = "repository has no commits"
        status = _git(
            root, "status", "--porcelain=v1", "-z", "--untracked-files=normal"
        )
        if status.returncode != 0:
            reason = f"git status failed ({_first_line(status.stderr)})"
            info["reason"] = f"{info['reason']}; {reason}" if info["reason"] else reason
            return info
    except FileNotFoundError:
        info["reason"] = "git executable not found"
        return info
    except (subprocess.TimeoutExpired, OSError) as exc:
        info["reason"] = f"git failed: {exc}"
        return info
    changed: list[str] = []
    fields = status.stdout.decode("utf-8", "replace").split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        changed.append(entry[3:])
        if entry[0] in "RC":  # renames/copies are followed by the original path
            i += 1
    info["dirty"] = bool(changed)
    info["changed_paths"] = sorted(changed)[:_MAX_CHANGED_PATHS]
    return info


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (``None`` if absent) plus ``python``; reads metadata, imports nothing."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def host_info() -> dict:
    """Hostname, platform string, machine, CPU count and the CPUs this process may use."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_available": available,
    }


def slurm_info(environ: Mapping[str, str] | None = None) -> dict | None:
    """SLURM job facts from the environment, or ``None`` outside a SLURM job (no SLURM_JOB_ID)."""
    env = os.environ if environ is None else environ
    if not env.get("SLURM_JOB_ID"):
        return None
    return {key: env.get(var) or None for key, var in SLURM_VARS.items()}


def device_info(device: Any = None, job_threads: int | None = None) -> dict:
    """``{"resolved", "cuda_name", "torch_threads", "job_threads"}``.

    torch is consulted only if already imported (a job that used it has), so CPU-only helper
    jobs stay light. ``device`` may be a string or a ``torch.device``.
    """
    resolved = None if device is None else str(device)
    info: dict[str, Any] = {
        "resolved": resolved,
        "cuda_name": None,
        "torch_threads": None,
        "job_threads": job_threads,
    }
    torch = sys.modules.get("torch")
    if torch is None and resolved is not None and resolved.startswith("cuda"):
        import torch  # a CUDA job has torch loaded anyway
    if torch is not None:
        try:
            info["torch_threads"] = int(torch.get_num_threads())
        except (
            Exception
        ):  # a partially imported or stubbed torch must not break the record
            pass
        if resolved is not None and resolved.startswith("cuda"):
            try:
                info["cuda_name"] = torch.cuda.get_device_name(torch.device(resolved))
            except Exception as exc:
                info["cuda_name"] = None
                info["cuda_error"] = str(exc)
    return info
