"""Hashes of library sources, passed to rules as params so that code edits trigger reruns."""

from __future__ import annotations

import hashlib
from pathlib import Path

SOURCE_SUFFIXES = (".py", ".c")


def module_files(src_root: str | Path, module: str) -> list[Path]:
    """The source files of a dotted module name: one .py file, or every .py and .c file of a
    package (C sources compiled at run time count as code too)."""
    base = Path(src_root).joinpath(*module.split("."))
    if base.is_dir():
        return sorted(p for p in base.rglob("*") if p.suffix in SOURCE_SUFFIXES
                      and p.is_file() and "__pycache__" not in p.parts)
    file = base.with_suffix(".py")
    if file.is_file():
        return [file]
    raise FileNotFoundError(
        f"module {module!r} not found under {src_root} (looked for {base}/ and {file}); "
        "fix the module name passed to code() in the rule"
    )


def source_hash(src_root: str | Path, modules) -> str:
    """sha256 over (relative path, content) of the modules' files, order independent."""
    files = sorted({f for m in modules for f in module_files(src_root, m)})
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(src_root)).encode())
        digest.update(b"\0")
        digest.update(f.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
