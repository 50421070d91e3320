"""Verifiable reproducibility archive of a finished run directory.

``create`` packs ``results/<run_name>/`` together with a snapshot of the code and config that
produced it into one ``.tar.gz`` whose members all sit under a top-level folder ``<name>/``::

    <name>/MANIFEST.json        every file's path (relative to <name>/), size and sha256, plus git
                                commit/dirty, creation time, package versions, a summary of
                                every run record found (rule, wildcards, status, start, end),
                                the environment (Python, ``pip freeze``, OS, CPU, GPU/CUDA; see
                                :mod:`weightspace.provenance.machine`) and, when known, the
                                workflow invocation (targets, config files, ``--config``)
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
record is present, parses and matches the run-record schema. It prints the sha256 of the
manifest: the manifest lists every file's hash, so that one digest pins the whole archive.
``MANIFEST.sha256`` inside the archive only detects accidents (whoever rewrites a member can
rewrite the manifest and its hash too); authenticity comes from a digest published elsewhere
(a paper, a release note, a signed tag) and checked with ``verify --expect DIGEST``.

``rerun`` unpacks a verified archive (refusing absolute, traversing and link members), runs the
recorded workflow invocation from the archived code and config with the current Python
environment, and compares the new run directory with the archived one file by file
(:mod:`weightspace.provenance.compare`: identical bytes, numbers within tolerance, differs,
missing, extra, and what :data:`~weightspace.provenance.compare.COMPARISON_EXCLUSIONS` leaves
out). Command line::

    python -m weightspace.archive create results/quick results/quick/archive/quick.tar.gz \
        --configfile config/quick.yaml --target all
    python -m weightspace.archive verify results/quick/archive/quick.tar.gz [--expect DIGEST]
    python -m weightspace.archive inspect results/quick/archive/quick.tar.gz [--requirements]
    python -m weightspace.archive rerun results/quick/archive/quick.tar.gz /tmp/rerun \
        [--cores N] [--out comparison.json] [--expect DIGEST] [--link resources]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .provenance.atomic import atomic_path, atomic_write_json, is_temp_name
from .provenance.compare import Comparison, compare_runs, run_files
from .provenance.environment import git_info, package_versions
from .provenance.files import sha256_file
from .provenance.machine import describe_environment, environment_lines
from .provenance.record_schema import is_run_record, validate_record

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_EXTRAS",
    "MANIFEST_NAME",
    "MANIFEST_SHA_NAME",
    "RerunError",
    "RerunResult",
    "UnsafeArchiveError",
    "VerifyReport",
    "create",
    "main",
    "manifest_lines",
    "normalise_digest",
    "read_manifest",
    "rerun",
    "snakemake_invocation",
    "unpack",
    "verify",
]

ARCHIVE_FORMAT = "weightspace-archive"
#: 2: the manifest records the environment and the workflow invocation.
FORMAT_VERSION = 2
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


def snakemake_invocation(
    workflow: Any, repo_root: str | os.PathLike[str], default_configfiles: Sequence[str]
) -> dict:
    """How a running Snakemake ``workflow`` was invoked, as ``create`` records it:
    targets (``[]`` for the default target), config files (relative to ``repo_root`` where
    inside it; ``default_configfiles`` when none was given) and ``--config`` overrides.
    Called by the archive rule when its job is scheduled, once the targets are known."""
    repo = Path(repo_root).resolve()
    configfiles = []
    for name in workflow.overwrite_configfiles or default_configfiles:
        path = Path(name).resolve()
        configfiles.append(
            path.relative_to(repo).as_posix()
            if path.is_relative_to(repo)
            else str(path)
        )
    return {
        "targets": sorted(workflow.dag_settings.targets),
        "configfiles": configfiles,
        "config": dict(workflow.config_settings.config),
    }


def _invocation_record(
    workflow: Mapping[str, Any], repo_root: Path
) -> tuple[dict, list[Path]]:
    """The manifest's ``workflow`` entry, and the config files to archive."""
    unknown = sorted(set(workflow) - {"targets", "configfiles", "config"})
    if unknown:
        raise ValueError(
            f"unknown workflow keys {unknown}: give targets, configfiles and config"
        )
    targets = [str(t) for t in workflow.get("targets") or []]
    paths = []
    for name in workflow.get("configfiles") or []:
        path = Path(name) if Path(name).is_absolute() else repo_root / name
        if not path.is_file():
            raise FileNotFoundError(
                f"config file of the run not found: {path} (give the --configfile the run used)"
            )
        paths.append(path)
    config = dict(workflow.get("config") or {})
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"--config overrides are not plain JSON values: {exc}"
        ) from None
    record = {
        "targets": targets,
        "configfiles": [_arcpath_for(p, repo_root).as_posix() for p in paths],
        "config": config,
    }
    return record, paths


def create(
    run_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    extra: Sequence[str | os.PathLike[str]] | None = None,
    repo_root: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    created: Any = None,
    workflow: Mapping[str, Any] | None = None,
) -> Path:
    """Write a reproducibility archive of ``run_dir`` to ``out_path`` (atomically); return its path.

    ``extra``: files/directories to snapshot with the results (relative paths are taken relative
    to ``repo_root``); ``None`` means the :data:`DEFAULT_EXTRAS` that exist, ``[]`` none.
    ``repo_root``: the repository root (default: the git top level of ``run_dir``, else the
    current directory); archive paths mirror paths relative to it. ``name``: the top-level folder
    (default: ``out_path``'s name without ``.tar.gz``). ``exclude``: name patterns to skip.
    ``created``: creation time (aware datetime, ISO string or epoch seconds), see module doc.
    ``workflow``: how the run was made, for ``rerun``: ``{"targets": [...], "configfiles":
    [...], "config": {...}}`` (Snakemake targets, ``[]`` for the default target; config files,
    relative to ``repo_root`` or absolute, archived with the code; ``--config`` overrides).
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

    invocation = None
    if workflow is not None:
        invocation, configfiles = _invocation_record(workflow, repo_root)
        for path in configfiles:  # a rerun needs them, wherever they are
            add(_arcpath_for(path, repo_root).as_posix(), path)

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
        "environment": describe_environment(),
        "workflow": invocation,
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
    expected_sha256: str | None = None
    manifest: dict | None = None  # parsed, whether or not it verified
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


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def normalise_digest(digest: str) -> str:
    """A sha256 digest as 64 lower-case hex digits (a ``sha256:`` prefix is allowed)."""
    text = digest.strip().lower().removeprefix("sha256:")
    if not _SHA256_HEX.match(text):
        raise ValueError(
            f"{digest!r} is not a sha256 digest: give the 64 hex digits that verify printed"
        )
    return text


def verify(
    archive_path: str | os.PathLike[str], expect: str | None = None
) -> VerifyReport:
    """Check an archive made by :func:`create`; never raises for a bad archive, reports instead.

    ``expect``: the published sha256 of the archive's manifest; any other manifest fails.
    """
    report = VerifyReport(archive=str(archive_path))
    if expect is not None:
        report.expected_sha256 = normalise_digest(expect)
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
        if report.expected_sha256:
            problems.append("no manifest, so the expected sha256 cannot match")
        return report

    report.manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    expected = report.expected_sha256
    if expected is not None and report.manifest_sha256 != expected:
        problems.append(
            f"manifest sha256 {report.manifest_sha256} is not the expected {expected}: "
            "this is not the archive whose digest was published"
        )
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
    report.manifest = manifest
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


# --------------------------------------------------------------------------- inspect


def read_manifest(archive_path: str | os.PathLike[str]) -> tuple[dict, str]:
    """The parsed manifest and its sha256, read without checking the other members
    (that is :func:`verify`'s job)."""
    with tarfile.open(archive_path, mode="r:gz") as tar:
        for member in tar:
            split = _member_rel(member.name)
            if split is not None and split[1] == MANIFEST_NAME and member.isreg():
                data = tar.extractfile(member).read()
                try:
                    manifest = json.loads(data)
                except ValueError as exc:
                    raise ValueError(
                        f"{archive_path}: {MANIFEST_NAME} cannot be parsed: {exc}"
                    ) from None
                return manifest, hashlib.sha256(data).hexdigest()
    raise ValueError(
        f"{archive_path} holds no {MANIFEST_NAME}: not a weightspace archive"
    )


def _command_words(workflow: Mapping[str, Any], cores: str = "all") -> list[str]:
    """Snakemake's arguments that repeat a recorded invocation."""
    words = ["--cores", str(cores), *workflow.get("targets", [])]
    if workflow.get("configfiles"):
        words += ["--configfile", *workflow["configfiles"]]
    if workflow.get("config"):
        # Snakemake reads each value as YAML, of which JSON is a subset
        words += ["--config"] + [
            f"{key}={json.dumps(value)}" for key, value in workflow["config"].items()
        ]
    return words


def manifest_lines(manifest: Mapping[str, Any], sha256: str | None = None) -> list[str]:
    """What an archive holds and how it was made, in a few lines."""
    git = manifest.get("git") or {}
    records = manifest.get("records") or []
    files = manifest.get("files") or []
    lines = [
        f"archive: {manifest.get('name')} (format {manifest.get('format_version')}),"
        f" created {manifest.get('created')}",
    ]
    if sha256:
        lines.append(f"manifest sha256: {sha256}")
    run_dir = f"{manifest.get('run_dir')}/"
    outputs = sum(1 for f in files if str(f.get("path", "")).startswith(run_dir))
    lines.append(
        f"run: {manifest.get('run_dir')} ({outputs} outputs, {len(records)} run records;"
        f" {len(files)} files with the code and config)"
    )
    if git.get("commit"):
        dirty = (
            f", dirty: {len(git.get('changed_paths') or [])} changed paths"
            if git.get("dirty")
            else ""
        )
        lines.append(f"code: git commit {git['commit']}{dirty}")
    else:
        lines.append(f"code: no git commit ({git.get('reason')})")
    workflow = manifest.get("workflow")
    if workflow:
        lines.append("workflow: snakemake " + " ".join(_command_words(workflow)))
    else:
        lines.append("workflow: not recorded (rerun needs an archive made with it)")
    return lines + environment_lines(manifest.get("environment"))


# --------------------------------------------------------------------------- rerun


class UnsafeArchiveError(ValueError):
    """A member that must not be extracted: absolute, outside the archive folder, a link."""


def unpack(archive_path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract the archive's folder to ``dest`` (which must not exist); return ``dest``.

    Extracts into a temporary folder beside ``dest`` and renames it at the end, so an
    error leaves nothing behind. Only regular files and folders under the one top-level
    folder are extracted: an absolute or ``..`` member, a second top-level folder, a link
    or a device raises :class:`UnsafeArchiveError` before anything is renamed into place.
    """
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; unpack into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".unpacking", dir=dest.parent)
    )
    root = tmp.resolve()
    try:
        with tarfile.open(archive_path, mode="r:gz") as tar:
            top = None
            for member in tar:
                split = _member_rel(member.name)
                if split is None:
                    raise UnsafeArchiveError(
                        f"refusing to unpack {archive_path}: member {member.name!r} is "
                        "absolute or outside the archive folder"
                    )
                name, rel = split
                if top is None:
                    top = name
                elif name != top:
                    raise UnsafeArchiveError(
                        f"refusing to unpack {archive_path}: members under both "
                        f"{top!r} and {name!r}"
                    )
                target = tmp / rel
                if not target.resolve().is_relative_to(root):
                    raise UnsafeArchiveError(
                        f"refusing to unpack {archive_path}: {member.name!r} leads outside"
                    )
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    raise UnsafeArchiveError(
                        f"refusing to unpack {archive_path}: {member.name!r} is a link "
                        "or special file (an archive holds regular files only)"
                    )
                if target.exists():
                    raise UnsafeArchiveError(
                        f"refusing to unpack {archive_path}: {member.name!r} twice"
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


class RerunError(RuntimeError):
    """The archive cannot be rerun as it is (it does not verify, or lacks what a rerun needs)."""


@dataclass
class RerunResult:
    """Outcome of :func:`rerun`; ``ok`` when the workflow succeeded and reproduced every
    output (see :class:`~weightspace.provenance.compare.Comparison`)."""

    archive: str
    name: str
    manifest_sha256: str
    directory: Path
    workdir: Path
    run_dir: str
    command: list[str]
    returncode: int
    log: Path
    comparison: Comparison

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.comparison.reproduced

    def to_json(self) -> dict:
        return {
            "archive": self.archive,
            "name": self.name,
            "manifest_sha256": self.manifest_sha256,
            "reproduced": self.ok,
            "rerun": {
                "directory": str(self.directory),
                "workdir": str(self.workdir),
                "run_dir": self.run_dir,
                "command": self.command,
                "returncode": self.returncode,
                "log": str(self.log),
                "environment": describe_environment(),
            },
            **self.comparison.to_json(),
        }

    def report_lines(self) -> list[str]:
        workflow = (
            "succeeded" if self.returncode == 0 else f"FAILED (exit {self.returncode})"
        )
        lines = [
            f"rerun of {self.name} (manifest sha256 {self.manifest_sha256})",
            f"workflow {workflow}: {' '.join(self.command)}",
            f"  in {self.workdir}, log {self.log}",
            *self.comparison.report_lines(),
        ]
        counts = self.comparison.counts
        if self.ok:
            lines.append(
                f"REPRODUCED: {counts['identical']} identical, "
                f"{counts['within_tolerance']} within tolerance, "
                f"{counts['excluded']} excluded"
            )
        else:
            lines.append(
                f"NOT REPRODUCED: {counts['differs']} differ, {counts['missing']} missing, "
                f"{counts['extra']} extra"
                + ("" if self.returncode == 0 else ", workflow failed")
            )
        return lines


def _safe_relative(path: str, what: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise RerunError(f"{what} {path!r} is not a path inside the archive")
    return rel


def rerun(
    archive_path: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    cores: str | int = "all",
    expect: str | None = None,
    link: Sequence[str | os.PathLike[str]] = (),
) -> RerunResult:
    """Rerun an archived workflow and compare its outputs with the archived ones.

    ``directory`` (new or empty) receives ``archived/`` (the unpacked archive), ``rerun/``
    (the archived code and config, without the archived run, where Snakemake runs the
    recorded targets with the recorded config files and ``--config`` overrides, using this
    Python environment and ``cores``) and ``rerun.log`` (Snakemake's output). ``link``:
    paths relative to the current folder (data such as ``resources``) linked into
    ``rerun/`` at the same relative place. Raises :class:`RerunError` when the archive does
    not verify (``expect`` as in :func:`verify`) or records no workflow invocation.
    """
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(
            f"{directory} is not an empty folder; rerun into a new one"
        )
    report = verify(archive_path, expect)
    if not report.ok:
        raise RerunError(
            f"the archive does not verify, so it is not rerun:\n{report.summary()}"
        )
    manifest = report.manifest
    workflow = manifest.get("workflow")
    if not workflow:
        raise RerunError(
            "the archive records no workflow invocation (made by `create` without "
            "--configfile/--target, or by an older version): make it again with "
            "`snakemake ... archive` or `python -m weightspace.archive create ... "
            "--configfile FILE --target TARGET`"
        )
    run_dir = _safe_relative(manifest.get("run_dir", ""), "the run directory")
    configfiles = [
        _safe_relative(c, "config file") for c in workflow.get("configfiles", [])
    ]
    if importlib.util.find_spec("snakemake") is None:
        raise RerunError(
            f"snakemake is not installed for {sys.executable}; install the archived "
            "environment (`python -m weightspace.archive inspect ARCHIVE --requirements`)"
        )
    links = []
    for item in link:
        rel = Path(item)
        if rel.is_absolute() or ".." in rel.parts or not Path(item).exists():
            raise FileNotFoundError(
                f"--link {item}: give an existing path relative to the current folder"
            )
        links.append(rel)

    directory.mkdir(parents=True, exist_ok=True)
    archived = unpack(archive_path, directory / "archived")
    if not (archived / "Snakefile").is_file():
        raise RerunError(
            "the archive holds no Snakefile (it was packed without the code), so there is "
            "nothing to rerun"
        )
    for config_file in configfiles:
        if not (archived / config_file).is_file():
            raise RerunError(
                f"the recorded config file {config_file} is not in the archive"
            )

    # The workflow runs in a copy without the archived run, so that it makes every output anew.
    workdir = directory / "rerun"
    tmp = Path(tempfile.mkdtemp(prefix=".rerun.", suffix=".copying", dir=directory))
    skip = (archived / run_dir).resolve()
    try:
        shutil.copytree(
            archived,
            tmp,
            dirs_exist_ok=True,
            ignore=lambda d, names: [
                n for n in names if (Path(d) / n).resolve() == skip
            ],
        )
        os.rename(tmp, workdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for rel in links:
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).symlink_to(rel.resolve())

    command = [sys.executable, "-m", "snakemake", *_command_words(workflow, str(cores))]
    log = directory / "rerun.log"
    with open(log, "wb") as out:
        proc = subprocess.run(
            command,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    prefix = run_dir.as_posix() + "/"
    archived_files = {
        f["path"][len(prefix) :]: archived / f["path"]
        for f in manifest["files"]
        if f["path"].startswith(prefix)
    }
    new_run = workdir / run_dir
    rerun_files = run_files(new_run) if new_run.is_dir() else {}
    comparison = compare_runs(
        archived_files,
        rerun_files,
        archive_exclude=manifest.get("exclude", DEFAULT_EXCLUDE),
    )
    return RerunResult(
        archive=str(archive_path),
        name=manifest.get("name", ""),
        manifest_sha256=report.manifest_sha256,
        directory=directory,
        workdir=workdir,
        run_dir=run_dir.as_posix(),
        command=command,
        returncode=proc.returncode,
        log=log,
        comparison=comparison,
    )


# --------------------------------------------------------------------------- command line


def _config_override(text: str) -> tuple[str, Any]:
    import yaml  # as Snakemake reads --config values

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--config {text!r}: give KEY=VALUE")
    return key, yaml.safe_load(value)


def _cores(text: str) -> str:
    if text != "all" and not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(
            f"--cores {text!r}: give a positive number or all"
        )
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m weightspace.archive",
        description="Create, verify, inspect or rerun a reproducibility archive of a "
        "weightspace run directory.",
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
    p_create.add_argument(
        "--target",
        action="append",
        default=None,
        help="a Snakemake target the run was made with (repeatable; records the "
        "invocation that `rerun` repeats)",
    )
    p_create.add_argument(
        "--configfile",
        action="append",
        default=None,
        help="a config file the run was made with (repeatable, in order; archived)",
    )
    p_create.add_argument(
        "--config",
        action="append",
        type=_config_override,
        default=None,
        metavar="KEY=VALUE",
        help="a --config override the run was made with (repeatable)",
    )
    p_verify = sub.add_parser("verify", help="check an archive against its manifest")
    p_verify.add_argument("archive")
    p_verify.add_argument(
        "--expect",
        metavar="DIGEST",
        help="the published sha256 of the manifest; any other manifest fails",
    )
    p_inspect = sub.add_parser(
        "inspect", help="show how an archive's run was made and its environment"
    )
    p_inspect.add_argument("archive")
    p_inspect.add_argument(
        "--requirements",
        action="store_true",
        help="print the recorded `pip freeze` only (a requirements file)",
    )
    p_rerun = sub.add_parser(
        "rerun", help="rerun the archived workflow and compare its outputs"
    )
    p_rerun.add_argument("archive")
    p_rerun.add_argument("directory", help="a new or empty folder to unpack and run in")
    p_rerun.add_argument(
        "--cores", type=_cores, default="all", help="Snakemake's --cores (default: all)"
    )
    p_rerun.add_argument("--out", help="write the comparison as JSON to this file")
    p_rerun.add_argument(
        "--expect", metavar="DIGEST", help="as for verify: rerun only this archive"
    )
    p_rerun.add_argument(
        "--link",
        action="append",
        default=[],
        metavar="PATH",
        help="link PATH (relative to here, e.g. resources) into the rerun folder "
        "(repeatable): data the run read from outside the archive",
    )
    return parser


def _error(message: str, status: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    if args.command == "create":
        workflow = None
        if args.target or args.configfile or args.config:
            workflow = {
                "targets": args.target or [],
                "configfiles": [str(Path(f).resolve()) for f in args.configfile or []],
                "config": dict(args.config or []),
            }
        try:
            out = create(
                args.run_dir,
                args.out,
                extra=args.extra,
                repo_root=args.repo_root,
                name=args.name,
                workflow=workflow,
            )
        except (FileNotFoundError, ValueError) as exc:
            return _error(str(exc))
        report = verify(out)
        print(
            f"wrote {out} ({report.n_listed} files, {report.records_checked} run records)"
        )
        print(f"manifest sha256: {report.manifest_sha256}")
        if not report.ok:
            print(report.summary(), file=sys.stderr)
            return 1
        return 0

    if not Path(args.archive).is_file():
        return _error(f"archive not found: {args.archive}")
    expect = getattr(args, "expect", None)
    if expect is not None:
        try:
            normalise_digest(expect)
        except ValueError as exc:
            return _error(str(exc))

    if args.command == "verify":
        report = verify(args.archive, expect)
        # The report is the command's result either way, so it goes to stdout; the exit
        # code says which.
        print(report.summary())
        if report.manifest is not None:
            lines = manifest_lines(report.manifest, report.manifest_sha256)
            print("\n".join(lines[1:]))  # the archive's name is in the summary already
        elif report.manifest_sha256:
            print(f"manifest sha256: {report.manifest_sha256}")
        return 0 if report.ok else 1

    if args.command == "inspect":
        try:
            manifest, digest = read_manifest(args.archive)
        except (ValueError, tarfile.TarError, OSError, EOFError) as exc:
            return _error(str(exc), 1)
        if args.requirements:
            freeze = (manifest.get("environment") or {}).get("pip_freeze") or {}
            if freeze.get("requirements") is None:
                why = freeze.get("reason") or "the archive predates environment records"
                return _error(f"no pip freeze recorded: {why}", 1)
            print("\n".join(freeze["requirements"]))
            return 0
        print("\n".join(manifest_lines(manifest, digest)))
        print("(not verified: run verify to check every file against the manifest)")
        return 0

    print(
        f"rerunning {args.archive} in {args.directory} "
        f"(Snakemake's output: {Path(args.directory) / 'rerun.log'})",
        file=sys.stderr,
    )
    try:
        result = rerun(
            args.archive,
            args.directory,
            cores=args.cores,
            expect=expect,
            link=args.link,
        )
    except RerunError as exc:
        return _error(str(exc), 1)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        return _error(str(exc))
    print("\n".join(result.report_lines()))
    if args.out:
        atomic_write_json(args.out, result.to_json())
        print(f"comparison written to {args.out}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
