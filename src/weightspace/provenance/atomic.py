"""Atomic file writes and canonical JSON.

Every writer here puts the content into a temporary file in the *same directory* as the target,
flushes and fsyncs it, then ``os.replace``-s it onto the target. A reader (or Snakemake after a
killed job) therefore sees either the old file or the complete new one, never a half-written file.
On an exception the temporary file is removed and an existing target is left untouched.

Temporary files are named ``.<name>.<random>.wstmp<suffix>``: hidden, recognisable by
:func:`is_temp_name` (the archive skips leftovers from crashed writes), and ending in the target's
own suffix so that writers which infer a format from the extension (``savefig``) or append one
(``np.savez``) behave as they would on the target.

JSON conversion (:func:`to_jsonable`) turns numpy scalars and arrays, torch tensors, paths, sets and
tuples into plain JSON values. Non-finite floats (NaN, +-inf) are not valid JSON; by default
:func:`atomic_write_json` writes them as ``null`` (strict JSON that every reader parses) and
reports where it did so through ``nonfinite_paths`` so callers can note it (run records list them
under ``notes``). :func:`canonical_json` keeps them as the ``NaN``/``Infinity`` tokens that
``json.loads`` reads back, because it must round-trip config values exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from typing import Any

__all__ = [
    "TEMP_MARKER",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "canonical_json",
    "is_temp_name",
    "to_jsonable",
]

TEMP_MARKER = ".wstmp"

_NONFINITE_MODES = ("null", "string", "error", "keep")


def is_temp_name(name: str) -> bool:
    """True for a file name made by this module's temporary-file scheme."""
    return name.startswith(".") and TEMP_MARKER in name


def _default_mode() -> int:
    # mkstemp creates 0600 files; final outputs should get the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not supported on every platform/filesystem.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _replace(tmp: Path, target: Path) -> None:
    if target.exists():
        # Keep the mode of a file we overwrite (e.g. an executable script).
        os.chmod(tmp, target.stat().st_mode & 0o7777)
    else:
        os.chmod(tmp, _default_mode())
    os.replace(tmp, target)
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` if the block succeeds.

    For writers that want a file name rather than a stream::

        with atomic_path("fig.pdf") as tmp:
            fig.savefig(tmp)

    The temporary name ends with the target's suffix (``np.savez`` would otherwise append
    ``.npz``). If the block raises, the temporary file is deleted and the target is untouched.
    """
    target = Path(path)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.",
        suffix=f"{TEMP_MARKER}{target.suffix}",
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(
                f"atomic_path: the temporary file {tmp} for {target} was removed before it "
                "could be moved into place"
            )
        _fsync_file(tmp)
        _replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mkdir: bool = True
) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    target = Path(path)
    with atomic_path(target, mkdir=mkdir) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return target


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` atomically, through a file handle: given a file name, torch names
    the archive's root folder after it (here a random temporary name), so equal objects
    would give different bytes; given a handle it writes ``archive/``."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    mkdir: bool = True,
) -> Path:
    """Write ``text`` to ``path`` atomically (newlines are written as given); return the path."""
    return atomic_write_bytes(path, text.encode(encoding), mkdir=mkdir)


def _nonfinite(value: float, mode: str, where: str, found: list[str] | None) -> Any:
    if found is not None:
        found.append(where)
    if mode == "null":
        return None
    if mode == "string":
        return (
            "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        )
    if mode == "keep":
        return value
    raise ValueError(f"non-finite float {value!r} at {where} cannot be written as JSON")


def to_jsonable(
    obj: Any,
    *,
    nonfinite: str = "null",
    nonfinite_paths: list[str] | None = None,
    _where: str = "$",
) -> Any:
    """Convert ``obj`` into plain JSON types (dict with str keys, list, str, int, float, bool, None).

    Handles numpy scalars/arrays and torch tensors (via ``.tolist()``/``.item()``, without importing
    either), ``PurePath`` (as a POSIX-style string), tuples and sets (sets sorted), and mappings
    (keys converted with ``str``; two keys that collide after conversion raise ``ValueError``).
    ``nonfinite`` says what to do with NaN/inf floats: ``"null"`` (default), ``"string"``
    (``"NaN"``, ``"Infinity"``, ``"-Infinity"``), ``"keep"`` (leave the float; only for
    ``allow_nan`` output) or ``"error"``. Their JSON-path-like locations are appended to
    ``nonfinite_paths`` when given. Anything else unknown raises ``TypeError``.
    """
    if nonfinite not in _NONFINITE_MODES:
        raise ValueError(
            f"nonfinite must be one of {_NONFINITE_MODES}, got {nonfinite!r}"
        )
    kw = {"nonfinite": nonfinite, "nonfinite_paths": nonfinite_paths}

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)  # normalises int subclasses (IntEnum) to plain ints
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        return _nonfinite(obj, nonfinite, _where, nonfinite_paths)
    if isinstance(obj, PurePath):
        return obj.as_posix()
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            skey = key if isinstance(key, str) else str(to_jsonable(key, **kw))
            if skey in out:
                raise ValueError(
                    f"keys collide after conversion to str at {_where}: {skey!r}"
                )
            out[skey] = to_jsonable(value, **kw, _where=f"{_where}.{skey}")
        return out
    if isinstance(obj, (list, tuple)):
        return [
            to_jsonable(v, **kw, _where=f"{_where}[{i}]") for i, v in enumerate(obj)
        ]
    if isinstance(obj, (set, frozenset)):
        items = [to_jsonable(v, **kw, _where=f"{_where}[]") for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, (bytes, bytearray)):
        raise TypeError(
            f"bytes at {_where} are not JSON-serialisable; encode them first"
        )
    # numpy generic scalars, 0-d arrays and torch scalars expose .item(); arrays/tensors .tolist().
    # Duck-typed so that neither library has to be imported here.
    module = type(obj).__module__.split(".")[0]
    if module in ("numpy", "torch"):
        if hasattr(obj, "detach"):  # torch tensor: leave autograd and the device first
            obj = obj.detach().cpu()
        if getattr(obj, "ndim", 0) == 0 and hasattr(obj, "item"):
            return to_jsonable(obj.item(), **kw, _where=_where)
        if hasattr(obj, "tolist"):
            return to_jsonable(obj.tolist(), **kw, _where=_where)
        if module == "torch" and type(obj).__name__ in ("device", "dtype"):
            return str(obj)
        if module == "numpy" and type(obj).__name__.startswith("dtype"):
            return str(obj)
    raise TypeError(
        f"object of type {type(obj).__name__} at {_where} is not JSON-serialisable"
    )


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    nonfinite: str = "null",
    nonfinite_paths: list[str] | None = None,
    mkdir: bool = True,
) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2, trailing newline) to ``path`` atomically.

    The object is converted with :func:`to_jsonable`; by default NaN/inf become ``null`` and their
    locations are appended to ``nonfinite_paths`` if that list is given. The output is strict JSON
    (``allow_nan=False``) unless ``nonfinite="keep"``.
    """
    data = to_jsonable(obj, nonfinite=nonfinite, nonfinite_paths=nonfinite_paths)
    text = json.dumps(
        data,
        sort_keys=True,
        indent=2,
        ensure_ascii=False,
        allow_nan=(nonfinite == "keep"),
    )
    return atomic_write_text(path, text + "\n", mkdir=mkdir)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON document at ``path`` (read as UTF-8, the file closed again)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def canonical_json(obj: Any) -> str:
    """One-line JSON with sorted keys and fixed separators, identical for equal inputs.

    Used to pass config slices as Snakemake params: the string changes only if a value changes,
    whatever the key order of the source YAML. Floats use Python's shortest round-trip ``repr``,
    so ``json.loads`` returns exactly the original values; ints and floats stay distinct
    (``1`` vs ``1.0``). Non-finite floats are written as ``NaN``/``Infinity`` tokens, which
    ``json.loads`` reads back. Non-ASCII characters are escaped so the string is plain ASCII.
    """
    data = to_jsonable(obj, nonfinite="keep")
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
    )
