"""Verifiable reproducibility archive of a finished run directory.

``create`` packs ``results/<run_name>/`` together with a snapshot of the code and config that
produced it into one ``.tar.gz`` whose members all sit under a top-level folder ``<name>/``::

    <name>/MANIFEST.json        every file's path (relative to <name>/), size and sha256, plus git
                                commit/dirty, creation time, package versions, and a summary of
                                every run record found (rule, wildcards, status, start, end)
    <name>/MANIFEST.sha256      "<sha256 of MANIFEST.json>  MANIFEST.json" (``sha256sum -c`` format)
    <name>/results/<run>/...    the run's outputs
    <name>/Snakefile, rules/, workflow/, src/, config/, ...   the extras, at their repo-relative paths

so an unpacked archive is a runnable copy of the repository at that state. Files outside the
repository root given as extras go to ``<name>/external/<basename>``.

Determinism: members are written in sorted path order (the two manifest files first, so a reader
finds them without scanning the archive), with ``uid = gid = 0``, empty owner names, modes
normalised to 0644/0755 and every mtime set to the archive's creation time; gzip stores no file
name and a zero timestamp. The creation time is, in order of preference, the ``created``
argument, ``$SOURCE_DATE_EPOCH`` (the reproducible-builds convention), or the newest mtime among
the archived files. Packing the same files twice therefore gives byte-identical archives.

Excluded (by name, matched against every path component with ``fnmatch``; see
:data:`DEFAULT_EXCLUDE`): Snakemake's state (``.snakemake``), caches (``__pycache__``, ``*.pyc``,
``.pytest_cache``), virtualenvs, ``.git``, and training checkpoints (``checkpoints/``, ``*.ckpt``:
large, transient resume state whose final result is already in the outputs). Always excluded:
leftover temporary files of atomic writes, the archive being written, and ``archive/`` directly
inside the run directory (where the workflow writes archives, so older ones are not nested).
Symlinked directories are not followed; they and dangling links are listed under ``skipped``.

``verify`` re-hashes every member against the manifest, checks the manifest against
``MANIFEST.sha256``, reports missing, extra and modified files, and checks that every listed run
record is present, parses and matches the run-record schema. Command line::

    python -m weightspace.archive create results/quick results/quick/archive/quick.tar.gz
    python -m weightspace.archive verify results/quick/archive/quick.tar.gz
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .provenance.atomic import atomic_path, is_temp_name
from .provenance.environment import git_info, package_versions
from .provenance.files import sha256_file
from .provenance.record_schema import is_run_record, validate_record

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_EXTRAS",
    "MANIFEST_NAME",
    "MANIFEST_SHA_NAME",
    "VerifyReport",
    "create",
    "main",
    "verify",
]

ARCHIVE_FORMAT = "weightspace-archive"
FORMAT_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"
MANIFEST_SHA_NAME = "MANIFEST.sha256"

#: Repo-relative paths archived as the code/config snapshot when ``extra`` is not given
#: (those that do not exist are skipped).
DEFAULT_EXTRAS: tuple[str, ...] = (
    "Snakefile",
    "rules",
    "workflow",
    "src",
    "config",
    "profiles",
    "envs",
    "benchmarks",
    "pyproject.toml",
    "Makefile",
    "README.md",
)

#: Patterns matched against each path component (directory or file name).
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".snakemake",
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".pytest_cache",
    ".mypy_cache",
    ".ipynb_checkpoints",
    ".venv",
    "venv",
    ".git",
    "*.egg-info",
    "checkpoints",
    "*.ckpt",
    ".DS_Store",
)

# Run records are small; anything bigger is not parsed when looking for them.
_MAX_RECORD_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- create


@dataclass(frozen=True)
class _Entry:
    arcpath: str  # relative to <name>/
    source: Path
    size: int
    sha256: str
    executable: bool


def _strip_archive_suffix(name: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".gz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _excluded(name: str, patterns: Sequence[str]) -> bool:
    return is_temp_name(name) or any(fnmatch.fnmatch(name, pat) for pat in patterns)


def _walk(
    root: Path,
    arcroot: PurePosixPath,
    patterns: Sequence[str],
    skip: set[Path],
    skipped: list[dict],
) -> Iterable[tuple[str, Path]]:
    """Yield (archive path, source path) for every file under ``root`` (a file or a directory)."""
    if root.is_file():
        yield arcroot.as_posix(), root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel_here = here.relative_to(root)
        keep = []
        for d in sorted(dirnames):
            full = here / d
            if _excluded(d, patterns) or full.resolve() in skip:
                continue
            if full.is_symlink():
                skipped.append(
                    {
                        "path": (arcroot / rel_here / d).as_posix(),
                        "reason": "symlink to a directory, not followed",
                    }
                )
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            full = here / f
            if _excluded(f, patterns) or full.resolve() in skip:
                continue
            arc = (arcroot / rel_here / f).as_posix()
            if not full.is_file():  # dangling symlink, socket, fifo
                skipped.append(
                    {
                        "path": arc,
                        "reason": "not a regular file (dangling link or special file)",
                    }
                )
                continue
            yield arc, full


def _arcpath_for(path: Path, repo_root: Path) -> PurePosixPath:
    try:
        return PurePosixPath(path.resolve().relative_to(repo_root.resolve()).as_posix())
    except ValueError:
        return PurePosixPath("external") / path.name


def _resolve_created(created: Any, mtimes: Sequence[int]) -> tuple[int, str]:
    if created is not None:
        if isinstance(created, _dt.datetime):
            if created.tzinfo is None:
                raise ValueError("created must be timezone-aware")
            return int(created.timestamp()), "argument"
        if isinstance(created, str):
            parsed = _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=_dt.timezone.utc)
            return int(parsed.timestamp()), "argument"
        return int(created), "argument"
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env), "SOURCE_DATE_EPOCH"
    return max(mtimes, default=0), "newest_file_mtime"


def _iso(epoch: int) -> str:
    return (
        _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)
        .isoformat()
        .replace("+00:00", "Z")
    )


def _record_summary(arcpath: str, source: Path, size: int) -> dict | None:
    if not arcpath.endswith(".json") or size > _MAX_RECORD_BYTES:
        return None
    try:
        obj = json.loads(source.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: certainly not a run record
    if not is_run_record(obj):
        return None
    return {
        "path": arcpath,
        "rule": obj.get("rule"),
        "wildcards": obj.get("wildcards"),
        "status": obj.get("status"),
        "start": obj.get("start"),
        "end": obj.get("end"),
    }


class _HashingReader:
    """File wrapper that hashes what tarfile reads, to detect files changing mid-archive."""

    def __init__(self, fh: io.BufferedReader) -> None:
        self._fh = fh
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.hash.update(data)
        return data


def _tarinfo(name: str, size: int, mtime: int, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def create(
    run_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    extra: Sequence[str | os.PathLike[str]] | None = None,
    repo_root: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    created: Any = None,
) -> Path:
    """Write a reproducibility archive of ``run_dir`` to ``out_path`` (atomically); return its path.

    ``extra``: files/directories to snapshot with the results (relative paths are taken relative
    to ``repo_root``); ``None`` means the :data:`DEFAULT_EXTRAS` that exist, ``[]`` none.
    ``repo_root``: the repository root (default: the git top level of ``run_dir``, else the
    current directory); archive paths mirror paths relative to it. ``name``: the top-level folder
    (default: ``out_path``'s name without ``.tar.gz``). ``exclude``: name patterns to skip.
    ``created``: creation time (aware datetime, ISO string or epoch seconds), see module doc.
    """
    run_dir = Path(run_dir)
    out_path = Path(out_path)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run directory not found: {run_dir} (run the workflow first)"
        )
    if repo_root is None:
        root = git_info(run_dir)["root"]
        repo_root = Path(root) if root else Path.cwd()
    repo_root = Path(repo_root)
    name = name or _strip_archive_suffix(out_path.name)
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid archive name {name!r}")

    skip = {out_path.resolve(), (run_dir / "archive").resolve()}
    skipped: list[dict] = []
    sources: dict[str, Path] = {}

    def add(arc: str, src: Path) -> None:
        if arc in (MANIFEST_NAME, MANIFEST_SHA_NAME):
            raise ValueError(f"{src} would overwrite the archive's own {arc}")
        previous = sources.get(arc)
        if previous is not None and previous.resolve() != src.resolve():
            raise ValueError(
                f"two different files map to {arc!r} in the archive: {previous} and {src}"
            )
        sources[arc] = src

    run_arc = _arcpath_for(run_dir, repo_root)
    if run_arc.parts and run_arc.parts[0] == "external":
        run_arc = PurePosixPath("results") / run_dir.name
    for arc, src in _walk(run_dir, run_arc, exclude, skip, skipped):
        add(arc, src)

    if extra is None:
        extras = [repo_root / p for p in DEFAULT_EXTRAS if (repo_root / p).exists()]
    else:
        extras = [Path(p) if Path(p).is_absolute() else repo_root / p for p in extra]
        missing = [str(p) for p in extras if not p.exists()]
        if missing:
            raise FileNotFoundError(f"extra paths not found: {', '.join(missing)}")
    for path in extras:
        arcroot = _arcpath_for(path, repo_root)
        for arc, src in _walk(path, arcroot, exclude, skip, skipped):
            add(arc, src)

    entries: list[_Entry] = []
    records: list[dict] = []
    mtimes: list[int] = []
    for arc, src in sorted(sources.items()):
        try:
            st = src.stat()
            digest = sha256_file(src)
        except FileNotFoundError:
            # e.g. a temp() output Snakemake removed after the listing; report rather than fail
            skipped.append(
                {"path": arc, "reason": "vanished while the archive was being built"}
            )
            continue
        entry = _Entry(
            arcpath=arc,
            source=src,
            size=st.st_size,
            sha256=digest,
            executable=bool(st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)),
        )
        entries.append(entry)
        mtimes.append(int(st.st_mtime))
        summary = _record_summary(arc, src, entry.size)
        if summary is not None:
            records.append(summary)
    created_epoch, created_source = _resolve_created(created, mtimes)

    git = git_info(repo_root)
    manifest = {
        "format": ARCHIVE_FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": _iso(created_epoch),
        "created_source": created_source,
        "run_dir": run_arc.as_posix(),
        "run_name": run_dir.name,
        "git": {k: git[k] for k in ("commit", "dirty", "changed_paths", "reason")},
        "packages": package_versions(),
        "exclude": list(exclude),
        "skipped": sorted(skipped, key=lambda s: s["path"]),
        "files": [
            {"path": e.arcpath, "size": e.size, "sha256": e.sha256} for e in entries
        ],
        "records": records,
    }
    manifest_bytes = (
        json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    ).encode()
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    sha_bytes = f"{manifest_sha}  {MANIFEST_NAME}\n".encode()

    with atomic_path(out_path) as tmp:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
            ) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for arc, data in (
                (MANIFEST_NAME, manifest_bytes),
                (MANIFEST_SHA_NAME, sha_bytes),
            ):
                tar.addfile(
                    _tarinfo(f"{name}/{arc}", len(data), created_epoch, False),
                    io.BytesIO(data),
                )
            for e in entries:
                info = _tarinfo(
                    f"{name}/{e.arcpath}", e.size, created_epoch, e.executable
                )
                with open(e.source, "rb") as fh:
                    reader = _HashingReader(fh)
                    tar.addfile(info, reader)
                if reader.hash.hexdigest() != e.sha256:
                    raise RuntimeError(
                        f"{e.source} changed while the archive was being written"
                    )
    return out_path


# --------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`. ``ok`` is true when ``problems`` is empty."""

    archive: str
    name: str | None = None
    n_files: int = (
        0  # manifest entries whose member is present with the right size and hash
    )
    n_listed: int = 0  # manifest entries
    records_checked: int = 0
    manifest_sha256: str | None = None
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"OK: {self.n_files} files verified"
        lines = [f"FAILED: {len(self.problems)} problem(s) in {self.archive}"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _member_rel(member_name: str) -> tuple[str, str] | None:
    parts = PurePosixPath(member_name).parts
    if len(parts) < 2 or member_name.startswith("/") or ".." in parts:
        return None
    return parts[0], PurePosixPath(*parts[1:]).as_posix()


def verify(archive_path: str | os.PathLike[str]) -> VerifyReport:
    """Check an archive made by :func:`create`; never raises for a bad archive, reports instead."""
    report = VerifyReport(archive=str(archive_path))
    problems = report.problems
    actual: dict[str, tuple[int, str]] = {}
    small_json: dict[str, bytes] = {}
    manifest_bytes: bytes | None = None
    sha_bytes: bytes | None = None
    tops: set[str] = set()

    try:
        with tarfile.open(archive_path, mode="r:gz") as tar:
            for member in tar:
                split = _member_rel(member.name)
                if split is None:
                    problems.append(
                        f"member outside the archive folder: {member.name!r}"
                    )
                    continue
                top, rel = split
                tops.add(top)
                if member.isdir():
                    continue
                if not member.isreg():
                    problems.append(f"unexpected non-file member: {member.name}")
                    continue
                if rel in actual:
                    problems.append(f"duplicate member: {rel}")
                fh = tar.extractfile(member)
                h = hashlib.sha256()
                keep = rel in (MANIFEST_NAME, MANIFEST_SHA_NAME) or (
                    rel.endswith(".json") and member.size <= _MAX_RECORD_BYTES
                )
                chunks = []
                while block := fh.read(_CHUNK):
                    h.update(block)
                    if keep:
                        chunks.append(block)
                if rel == MANIFEST_NAME:
                    manifest_bytes = b"".join(chunks)
                elif rel == MANIFEST_SHA_NAME:
                    sha_bytes = b"".join(chunks)
                else:
                    actual[rel] = (member.size, h.hexdigest())
                    if keep:
                        small_json[rel] = b"".join(chunks)
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        problems.append(f"cannot read archive: {exc}")
        return report

    if len(tops) > 1:
        problems.append(f"more than one top-level folder: {', '.join(sorted(tops))}")
    report.name = sorted(tops)[0] if tops else None
    if manifest_bytes is None:
        problems.append(f"{MANIFEST_NAME} is missing")
        return report

    report.manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    if sha_bytes is None:
        problems.append(f"{MANIFEST_SHA_NAME} is missing")
    else:
        recorded = sha_bytes.decode("ascii", "replace").split()
        if not recorded or recorded[0] != report.manifest_sha256:
            problems.append(
                f"{MANIFEST_NAME} does not match {MANIFEST_SHA_NAME} (manifest modified)"
            )

    try:
        manifest = json.loads(manifest_bytes)
        listed = {
            f["path"]: (int(f["size"]), str(f["sha256"])) for f in manifest["files"]
        }
        records = list(manifest.get("records", []))
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"{MANIFEST_NAME} cannot be parsed: {exc}")
        return report
    if manifest.get("format") != ARCHIVE_FORMAT:
        problems.append(f"{MANIFEST_NAME} is not a {ARCHIVE_FORMAT} manifest")
    if report.name is not None and manifest.get("name") != report.name:
        problems.append(
            f"manifest name {manifest.get('name')!r} differs from folder {report.name!r}"
        )
    report.n_listed = len(listed)

    for rel, (size, digest) in sorted(listed.items()):
        got = actual.get(rel)
        if got is None:
            report.missing.append(rel)
            problems.append(f"missing: {rel}")
        elif got != (size, digest):
            report.modified.append(rel)
            problems.append(f"modified: {rel} (size/sha256 differ from the manifest)")
        else:
            report.n_files += 1
    for rel in sorted(set(actual) - set(listed)):
        report.extra.append(rel)
        problems.append(f"extra (not in the manifest): {rel}")

    for summary in records:
        rel = summary.get("path") if isinstance(summary, dict) else None
        if rel is None:
            problems.append(f"malformed record entry in the manifest: {summary!r}")
            continue
        if rel not in actual:
            if rel not in report.missing:
                problems.append(f"run record missing: {rel}")
            continue
        data = small_json.get(rel)
        try:
            record = json.loads(data) if data is not None else None
        except ValueError as exc:
            problems.append(f"run record does not parse: {rel} ({exc})")
            continue
        if not is_run_record(record):
            problems.append(f"not a run record: {rel}")
            continue
        try:
            validate_record(record)
        except Exception as exc:  # jsonschema.ValidationError; message is what matters
            problems.append(
                f"run record fails the schema: {rel} ({getattr(exc, 'message', exc)})"
            )
            continue
        for key in ("rule", "status", "start", "end"):
            if record.get(key) != summary.get(key):
                problems.append(
                    f"run record {rel}: {key} differs from the manifest summary"
                )
        report.records_checked += 1
    return report


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m weightspace.archive",
        description="Create or verify a reproducibility archive of a weightspace run directory.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_create = sub.add_parser(
        "create", help="pack a run directory with the code and config"
    )
    p_create.add_argument("run_dir", help="e.g. results/quick")
    p_create.add_argument("out", help="output .tar.gz path")
    p_create.add_argument(
        "--extra",
        action="append",
        default=None,
        help="file or directory to snapshot (repeatable; default: Snakefile, rules/, workflow/, "
        "src/, config/, profiles/, envs/, pyproject.toml, ... where present)",
    )
    p_create.add_argument(
        "--repo-root", default=None, help="repository root (default: git top level)"
    )
    p_create.add_argument(
        "--name", default=None, help="top-level folder name inside the archive"
    )
    p_verify = sub.add_parser("verify", help="check an archive against its manifest")
    p_verify.add_argument("archive")
    args = parser.parse_args(argv)

    if args.command == "create":
        try:
            out = create(
                args.run_dir,
                args.out,
                extra=args.extra,
                repo_root=args.repo_root,
                name=args.name,
            )
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        report = verify(out)
        print(
            f"wrote {out} ({report.n_listed} files, {report.records_checked} run records)"
        )
        if not report.ok:
            print(report.summary(), file=sys.stderr)
            return 1
        return 0

    if not Path(args.archive).is_file():
        print(f"error: archive not found: {args.archive}", file=sys.stderr)
        return 2
    report = verify(args.archive)
    # The report is the command's result either way, so it goes to stdout; the exit code says which.
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
