"""Checksums of files: the SHA-256 of a file's bytes, and the entry a run record lists
for each input of a job (path, size, hash). Standard library only, so that every job
can use it (the data module's checksums use it too).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MAX_INPUT_BYTES", "file_entry", "sha256_file"]

#: Inputs larger than this are listed with their size but not hashed (checkpoints, big
#: arrays); the data sets themselves are checksummed once by the data rules and go into
#: ``data``.
DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def file_entry(
    path: str | os.PathLike[str], max_bytes: int | None = DEFAULT_MAX_INPUT_BYTES
) -> dict:
    """``{"path", "size", "sha256", "note"}`` for one input; large files and
    directories unhashed."""
    p = Path(path)
    entry: dict[str, Any] = {
        "path": str(path),
        "size": None,
        "sha256": None,
        "note": None,
    }
    if p.is_dir():
        entry["note"] = "directory, not hashed"
    elif not p.exists():
        entry["note"] = "missing"
    else:
        size = p.stat().st_size
        entry["size"] = size
        if max_bytes is not None and size > max_bytes:
            entry["note"] = f"larger than {max_bytes} bytes, not hashed"
        else:
            entry["sha256"] = sha256_file(p)
    return entry
