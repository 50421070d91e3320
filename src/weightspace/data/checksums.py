"""SHA-256 checksums of the files a loader used, for run records.

Files are hashed byte by byte.  Directories (an ImageNet class folder, a flat
validation folder) are not: hashing every image of ImageNet would take longer than
many of the jobs, so a directory is summarised by the SHA-256 of its sorted listing
of (relative path, size in bytes) over all files beneath it.  That detects added,
removed, renamed and resized files, but not an edit that keeps a file's size.
Directory keys end with "/" so a record shows which kind of hash it holds.

Arrays held in memory (the embedded quick-scale data) are hashed by
`array_checksum`: dtype, shape and little-endian bytes of each array in order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from weightspace.provenance.files import sha256_file

__all__ = [
    "array_checksum",
    "directory_listing",
    "file_checksums",
    "sha256_directory_listing",
    "sha256_file",
]


def directory_listing(path: str | os.PathLike) -> list[tuple[str, int]]:
    """Sorted (relative POSIX path, size) of every file below `path`."""
    root = Path(path)
    entries = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            file_path = Path(dirpath, filename)
            entries.append(
                (file_path.relative_to(root).as_posix(), file_path.stat().st_size)
            )
    entries.sort()
    return entries


def sha256_directory_listing(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the sorted (relative path, size) listing of a directory."""
    digest = hashlib.sha256()
    for relative_path, size in directory_listing(path):
        digest.update(f"{relative_path}\t{size}\n".encode("utf-8"))
    return digest.hexdigest()


def file_checksums(
    paths: Iterable[str | os.PathLike] | str | os.PathLike,
    relative_to: str | os.PathLike | None = None,
) -> dict[str, str]:
    """{relative path: sha256} for files (content hash) and directories (listing hash, key ends with "/").

    Keys are POSIX paths relative to `relative_to` (default: the deepest directory
    containing all given paths), so records do not depend on where the data root is
    mounted.  Raises FileNotFoundError naming the first missing path.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    resolved = [Path(p).resolve() for p in paths]
    if not resolved:
        return {}
    for path in resolved:
        if not path.exists():
            raise FileNotFoundError(f"cannot checksum {path}: it does not exist")
    if relative_to is None:
        base = Path(os.path.commonpath([p.parent for p in resolved]))
    else:
        base = Path(relative_to).resolve()
    checksums: dict[str, str] = {}
    for path in sorted(resolved):
        try:
            key = path.relative_to(base).as_posix()
        except ValueError:
            raise ValueError(
                f"{path} is not inside relative_to={base}; pass a common parent directory"
            ) from None
        if path.is_dir():
            checksums[key.rstrip("/") + "/"] = sha256_directory_listing(path)
        else:
            checksums[key] = sha256_file(path)
    return checksums


def array_checksum(*arrays: np.ndarray) -> str:
    """Hex SHA-256 over dtype, shape and little-endian bytes of each array, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.asarray(array)
        little_endian = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        digest.update(f"{little_endian.dtype.str}{little_endian.shape}".encode("ascii"))
        digest.update(little_endian.tobytes())
    return digest.hexdigest()
