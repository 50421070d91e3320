"""Device selection, thread counts, and GPU slot assignment between concurrent jobs on one machine.

Snakemake's ``gpu`` resource caps how many GPU jobs run at once but does not say which GPU each job
should use. ``acquire_gpu`` hands out device indices through one lock file per GPU held with
``fcntl.flock``: the kernel drops the lock when its holder exits for any reason (including SIGKILL),
so a crashed job can never leave a GPU marked busy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import torch


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> torch.device.

    Asking for CUDA where none is available, or for a device index that does not exist, is an error
    naming the fix rather than a silent fallback to the CPU.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}"
        )
    text = spec.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ValueError(
            f"unknown device {spec!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device {spec!r} was requested but CUDA is not available on this machine; "
            "set device: auto (or cpu) in the config, or run on a machine with a GPU"
        )
    if match.group(1) is not None:
        index = int(match.group(1))
        count = torch.cuda.device_count()
        if index >= count:
            raise RuntimeError(
                f"device {spec!r} does not exist: {count} CUDA device(s) visible (indices 0..{count - 1}); "
                "pick a visible index or check CUDA_VISIBLE_DEVICES"
            )
        return torch.device("cuda", index)
    return torch.device("cuda")


def set_threads(n: int) -> int:
    """Use ``n`` intra-op threads (and ``n`` inter-op threads where torch still allows changing them).

    torch accepts the inter-op count only before its first parallel region; after that the call
    raises, and the existing inter-op pool is kept.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be a positive int, got {n!r}")
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(n)
    return n


def visible_gpu_ids() -> list[str]:
    """Identifiers of the GPUs this process may use, in CUDA index order.

    From ``CUDA_VISIBLE_DEVICES`` when set (physical ids or UUIDs; CUDA stops at the first invalid
    entry such as ``-1``), else ``"0".."count-1"`` from torch.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return [str(i) for i in range(torch.cuda.device_count())]
    ids = []
    for entry in env.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        ids.append(entry)
    return ids


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    # holder details for humans inspecting a busy lock; the lock itself is the flock
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} host {socket.gethostname()}\n".encode())
    return fd


def _holders(paths: list[Path]) -> str:
    lines = []
    for path in paths:
        try:
            lines.append(f"{path.name}: {path.read_text().strip() or 'unknown holder'}")
        except OSError:
            lines.append(f"{path.name}: unreadable")
    return "; ".join(lines)


@contextlib.contextmanager
def acquire_gpu(
    lock_dir: str | os.PathLike,
    n_devices: int | None = None,
    timeout: float = 60.0,
    poll_interval: float = 0.2,
) -> Iterator[int]:
    """Hold the first free GPU slot for the duration of the ``with`` block; yields its CUDA index.

    The slots are the visible GPUs (``visible_gpu_ids``), or the first ``n_devices`` of them when
    given (``"0".."n-1"`` if fewer are visible, which lets the locking be used without a GPU).
    Lock files are ``<lock_dir>/gpu<id>.lock`` with the physical id, so jobs with different
    ``CUDA_VISIBLE_DEVICES`` orderings still agree on which GPU is taken; the yielded index is the
    position in the visible list, i.e. what ``cuda:<index>`` means in this process.
    All slots busy: retry every ``poll_interval`` seconds, then raise TimeoutError after ``timeout``.
    """
    ids = visible_gpu_ids()
    if n_devices is not None:
        if (
            isinstance(n_devices, bool)
            or not isinstance(n_devices, int)
            or n_devices < 1
        ):
            raise ValueError(
                f"n_devices must be a positive int or None, got {n_devices!r}"
            )
        ids = (
            ids[:n_devices]
            if len(ids) >= n_devices
            else [str(i) for i in range(n_devices)]
        )
    if not ids:
        raise RuntimeError(
            "no GPU is visible to this job (CUDA_VISIBLE_DEVICES is empty or torch sees no CUDA device); "
            "run with device: cpu, or give the job a GPU"
        )
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        lock_dir / f"gpu{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu_id)}.lock"
        for gpu_id in ids
    ]

    deadline = time.monotonic() + timeout
    while True:
        for index, path in enumerate(paths):
            fd = _try_lock(path)
            if fd is not None:
                try:
                    yield index
                finally:
                    # lock files are never deleted: unlinking would let two holders lock different inodes
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"all {len(paths)} GPU slot(s) in {lock_dir} stayed busy for {timeout:g} s ({_holders(paths)}); "
                "allow at most as many concurrent GPU jobs as GPUs (e.g. snakemake --resources gpu=N) "
                "or raise the timeout"
            )
        time.sleep(poll_interval)
