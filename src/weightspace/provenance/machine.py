"""The software and hardware a run used, in enough detail to rebuild its environment:
Python, every installed distribution (``pip freeze``), the operating system, the CPU
model, and the GPUs with the CUDA build of torch.

The reproducibility archive stores this in its manifest (``environment``) and ``python -m
weightspace.archive inspect`` shows it. Nothing here raises because a fact is unknown:
the field is ``None`` and a ``reason`` (or ``*_error``) field says why.

CUDA is not initialised for this: torch is imported only if it is installed, a torch built
without CUDA is not asked about devices at all, the device count comes from NVML where
torch can use it, and the GPU names come from ``nvidia-smi`` when it is on the PATH; only
without it does torch initialise CUDA to name the devices.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["describe_environment", "environment_lines", "pip_freeze"]

_PIP_TIMEOUT_S = 300
_SMI_TIMEOUT_S = 30


def describe_environment() -> dict[str, Any]:
    """``{"python", "pip_freeze", "os", "cpu", "gpu"}`` of the running interpreter and machine."""
    return {
        "python": _python(),
        "pip_freeze": pip_freeze(),
        "os": _operating_system(),
        "cpu": _cpu(),
        "gpu": _gpu(),
    }


def _python() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
    }


# pip freeze takes seconds and its answer does not change within a process.
@functools.lru_cache(maxsize=1)
def _pip_freeze_cached(executable: str) -> tuple[tuple[str, ...] | None, str | None]:
    try:
        proc = subprocess.run(
            [executable, "-m", "pip", "freeze", "--all"],
            capture_output=True,
            text=True,
            timeout=_PIP_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`{executable} -m pip freeze` could not run: {exc}"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        return None, f"`{executable} -m pip freeze` failed: {why}"
    return tuple(line for line in proc.stdout.splitlines() if line.strip()), None


def pip_freeze(executable: str | None = None) -> dict[str, Any]:
    """``{"command", "requirements", "reason"}``: ``python -m pip freeze --all`` of this
    interpreter, or of ``executable`` (``requirements`` is ``None`` and ``reason`` says why
    when pip is missing or fails)."""
    requirements, reason = _pip_freeze_cached(executable or sys.executable)
    return {
        "command": f"{executable or sys.executable} -m pip freeze --all",
        "requirements": list(requirements) if requirements is not None else None,
        "reason": reason,
    }


def _operating_system() -> dict[str, Any]:
    try:
        release = platform.freedesktop_os_release()
    except OSError:  # not Linux, or no /etc/os-release
        release = {}
    libc, libc_version = platform.libc_ver()
    return {
        "system": platform.system(),
        "release": platform.release(),
        "version": platform.version(),
        "platform": platform.platform(),
        "distribution": release.get("PRETTY_NAME"),
        "libc": f"{libc} {libc_version}" if libc else None,
    }


def _cpu_model() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            text = cpuinfo.read_text(errors="replace")
        except OSError:
            text = ""
        # x86 says "model name", ARM kernels "Model" or "CPU part" only
        for key in ("model name", "Model", "Hardware"):
            for line in text.splitlines():
                name, _, value = line.partition(":")
                if name.strip() == key and value.strip():
                    return value.strip()
    if sys.platform == "darwin":
        try:
            proc = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=_SMI_TIMEOUT_S,
            )
            if proc.returncode == 0 and proc.stdout.strip():
                return proc.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return platform.processor() or None


def _cpu() -> dict[str, Any]:
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count()
    return {
        "model": _cpu_model(),
        "machine": platform.machine(),
        "count": os.cpu_count(),
        "available": available,
    }


def _nvidia_smi() -> tuple[list[dict[str, str]] | None, str | None]:
    """GPUs as nvidia-smi lists them, without touching CUDA in this process."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None, "nvidia-smi not on the PATH"
    try:
        proc = subprocess.run(
            [
                smi,
                "--query-gpu=name,memory.total,driver_version",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=_SMI_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi could not run: {exc}"
    if proc.returncode != 0:
        return None, f"nvidia-smi failed: {(proc.stderr or proc.stdout).strip()}"
    devices = []
    for line in proc.stdout.strip().splitlines():
        name, memory, driver = ([*map(str.strip, line.split(",")), "", ""])[:3]
        devices.append({"name": name, "memory": memory, "driver": driver})
    return devices, None


def _gpu() -> dict[str, Any]:
    info: dict[str, Any] = {
        "torch": None,
        "cuda_build": None,
        "cudnn": None,
        "device_count": None,
        "devices": [],
        "driver": None,
        "reason": None,
    }
    if importlib.util.find_spec("torch") is None:
        info["reason"] = "torch is not installed"
        return info
    try:
        import torch
    except Exception as exc:  # a broken install must not stop the archive
        info["reason"] = f"torch does not import: {exc}"
        return info
    info["torch"] = torch.__version__
    info["cuda_build"] = torch.version.cuda
    if torch.version.cuda is None:
        info["reason"] = "torch is built without CUDA"
        return info
    try:
        cudnn = torch.backends.cudnn.version()
        info["cudnn"] = str(cudnn) if cudnn is not None else None
        # NVML-based where available: counts devices without creating a CUDA context
        info["device_count"] = int(torch.cuda.device_count())
    except Exception as exc:
        info["reason"] = f"torch.cuda could not count devices: {exc}"
        return info
    if not info["device_count"]:
        info["reason"] = "no CUDA device visible"
        return info
    devices, smi_reason = _nvidia_smi()
    if devices is not None:
        info["devices"] = [{"name": d["name"], "memory": d["memory"]} for d in devices]
        info["driver"] = devices[0]["driver"] if devices else None
        return info
    try:  # without nvidia-smi only CUDA itself can name the devices
        info["devices"] = [
            {"name": torch.cuda.get_device_name(i), "memory": None}
            for i in range(info["device_count"])
        ]
    except Exception as exc:
        info["reason"] = f"{smi_reason}; torch.cuda could not name the devices: {exc}"
    return info


def environment_lines(env: dict[str, Any] | None) -> list[str]:
    """A few human-readable lines about an environment made by :func:`describe_environment`."""
    if not env:
        return [
            "environment: not recorded (archive made before environments were recorded)"
        ]
    python = env.get("python") or {}
    system = env.get("os") or {}
    cpu = env.get("cpu") or {}
    gpu = env.get("gpu") or {}
    freeze = env.get("pip_freeze") or {}
    lines = [
        f"python: {python.get('version')} ({python.get('implementation')})",
        f"os: {system.get('distribution') or system.get('system')}"
        f" ({system.get('platform')})",
        f"cpu: {cpu.get('model')} ({cpu.get('machine')},"
        f" {cpu.get('count')} cores, {cpu.get('available')} available)",
    ]
    if gpu.get("devices"):
        names = ", ".join(d["name"] for d in gpu["devices"])
        lines.append(
            f"gpu: {names} (CUDA {gpu.get('cuda_build')}, driver {gpu.get('driver')},"
            f" torch {gpu.get('torch')})"
        )
    else:
        built = f", CUDA build {gpu['cuda_build']}" if gpu.get("cuda_build") else ""
        torch = f"torch {gpu['torch']}{built}; " if gpu.get("torch") else ""
        lines.append(f"gpu: none ({torch}{gpu.get('reason')})")
    requirements = freeze.get("requirements")
    if requirements is None:
        lines.append(f"pip freeze: not recorded ({freeze.get('reason')})")
    else:
        lines.append(f"pip freeze: {len(requirements)} distributions")
    return lines
