"""Compare the outputs of a rerun with the archived ones, file by file.

Each file of either run directory gets one status:

``identical``
    the same bytes.
``within_tolerance``
    not the same bytes, but the same content: every number agrees within the tolerance
    (:data:`DEFAULT_TOLERANCE` unless a rule of :data:`TOLERANCE_RULES` names the file) and
    everything else is equal, apart from the parts an entry of
    :data:`COMPARISON_EXCLUSIONS` leaves out (those entries are named in the result).
``differs``
    anything else; the detail names the first differences.
``missing`` / ``extra``
    only in the archived run / only in the rerun.
``excluded``
    not compared at all, by a whole-file entry of :data:`COMPARISON_EXCLUSIONS`.

How content is compared, by file type: CSV/TSV cell by cell (numbers with the tolerance,
other cells exactly, named columns may be excluded); JSON value by value (numbers with
the tolerance, named fields may be excluded); ``.npz`` array by array; HTML, TeX and other
text with the numbers in it taken as numbers; PNG by its image chunks (the decompressed
pixels must be equal, text and time chunks may be excluded); PDF with the dates of its
info dictionary left out. Any other file must be byte-identical.

Standard library only (numpy for ``.npz`` files, imported when one is compared).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import os
import re
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .atomic import is_temp_name
from .record_schema import is_run_record

__all__ = [
    "ARCHIVE_EXCLUDED",
    "COMPARISON_EXCLUSIONS",
    "DEFAULT_TOLERANCE",
    "RUN_RECORDS",
    "STATUSES",
    "TOLERANCE_RULES",
    "Comparison",
    "Exclusion",
    "FileComparison",
    "Tolerance",
    "ToleranceRule",
    "compare_file",
    "compare_runs",
]

STATUSES = ("identical", "within_tolerance", "differs", "missing", "extra", "excluded")


@dataclass(frozen=True)
class Tolerance:
    """Two numbers agree when ``|a - b| <= max(rel * max(|a|, |b|), abs)``; NaN agrees
    with NaN and an infinity with the same infinity."""

    rel: float
    abs: float

    def close(self, a: float, b: float) -> bool:
        if a == b:
            return True
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return False
        return abs(a - b) <= max(self.rel * max(abs(a), abs(b)), self.abs)

    def describe(self) -> str:
        return (
            f"relative {self.rel:g} (numbers within {self.abs:g} of each other agree)"
        )


#: Numbers in CSV, JSON, ``.npz`` and text outputs agree within a relative 1e-6; the
#: absolute floor only lets float noise around zero (1e-17 against -3e-18) agree.
DEFAULT_TOLERANCE = Tolerance(rel=1e-6, abs=1e-12)


@dataclass(frozen=True)
class ToleranceRule:
    """Files (globs on the path relative to the run directory) compared with another
    tolerance, and why."""

    paths: tuple[str, ...]
    tolerance: Tolerance
    reason: str


#: Per-file tolerances; the first rule whose glob matches a file applies, else the default.
#: No output needs one today: every number a rerun on the same machine writes is
#: bit-identical, and one on another machine is within the default.
TOLERANCE_RULES: tuple[ToleranceRule, ...] = ()

#: ``Exclusion.paths`` entry that selects run records (JSON with the run record's
#: ``record_type``), wherever the rules put them.
RUN_RECORDS = "<run records>"
#: ``Exclusion.paths`` entry that selects what the archive's own ``exclude`` list (in its
#: manifest) kept out of it: there is nothing archived to compare such a file with.
ARCHIVE_EXCLUDED = "<left out by the archive's exclude list>"


@dataclass(frozen=True)
class Exclusion:
    """What a comparison leaves out, and why.

    ``paths``: globs (``fnmatch``, where ``*`` also crosses ``/``) on the path relative to
    the run directory, or :data:`RUN_RECORDS` / :data:`ARCHIVE_EXCLUDED`. ``fields``: the
    parts of such a file that are not compared: dotted JSON keys (each part a glob, so
    ``*`` stands for any key or list index), CSV column names (globs), PNG chunk types or
    PDF info-dictionary keys; empty means the whole file is not compared.
    """

    paths: tuple[str, ...]
    reason: str
    fields: tuple[str, ...] = ()

    def matches(self, rel: str, *, is_record: bool = False) -> bool:
        return any(
            (p == RUN_RECORDS and is_record) or fnmatch.fnmatchcase(rel, p)
            for p in self.paths
        )

    def describe(self) -> str:
        where = ", ".join(self.paths)
        what = ", ".join(self.fields) if self.fields else "whole file"
        return f"{where} [{what}]: {self.reason}"


#: Everything a rerun may not reproduce bit for bit, and so is not compared. Each entry
#: is printed in the comparison report with the number of files it applied to.
COMPARISON_EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion(("logs/*",), "job logs carry timestamps, durations and host paths"),
    Exclusion(
        ("benchmarks/*",), "Snakemake benchmarks are wall-clock times and memory"
    ),
    Exclusion(
        ("archive/*",),
        "archives the rerun itself builds; an archive never holds its run's archive/",
    ),
    Exclusion(
        (ARCHIVE_EXCLUDED,),
        "checkpoints, caches and temporary files are never archived, so nothing to compare",
    ),
    Exclusion(
        (RUN_RECORDS,),
        "when the job ran",
        ("start", "end", "duration_s"),
    ),
    Exclusion(
        (RUN_RECORDS,),
        "the machine and the SLURM job that ran it",
        ("host", "slurm"),
    ),
    Exclusion(
        (RUN_RECORDS,),
        "the rerun runs the unpacked snapshot, not a git checkout; the manifest keeps "
        "the archived commit",
        ("git",),
    ),
    Exclusion(
        (RUN_RECORDS,),
        "threads and resources follow the machine and --cores",
        ("job.threads", "job.resources", "device.job_threads", "device.torch_threads"),
    ),
    Exclusion(
        (RUN_RECORDS,),
        "hashes of the job's inputs: each input in the run directory is compared itself",
        ("inputs.*.sha256", "inputs.*.size"),
    ),
    Exclusion(
        (RUN_RECORDS,),
        "wall-clock time a job measured itself",
        ("metrics.seconds",),
    ),
    Exclusion(
        ("teleport/runs/*.json",),
        "wall-clock time of each training run and epoch",
        ("runs.*.seconds", "runs.*.history.*.seconds"),
    ),
    Exclusion(
        (
            "structured/speed/*.csv",
            "structured/testmatrices/*.csv",
            "structured/structured_fig_speed.csv",
        ),
        "measured wall-clock times (the speed benchmark, the approximators' run time)",
        ("seconds", "seconds_*"),
    ),
    Exclusion(
        (
            "structured/structured_fig_speed.pdf",
            "structured/structured_fig_speed.png",
            "structured/structured_fig_speed.claims.json",
        ),
        "the speed figure and its claims show measured wall-clock times",
    ),
    Exclusion(
        ("report/report.html",),
        "the report lists each job's duration, host and commit; the figures, tables "
        "and claims it shows are compared on their own",
    ),
    Exclusion(
        ("*.pdf",),
        "PDF creation and modification dates",
        ("/CreationDate", "/ModDate"),
    ),
    Exclusion(
        ("*.png",),
        "PNG text and time chunks (software version, creation time); pixels are compared",
        ("tEXt", "iTXt", "zTXt", "tIME"),
    ),
)

_TEXT_SUFFIXES = {".html", ".htm", ".tex", ".txt", ".md", ".rst", ".svg", ".yaml"}
_MAX_LISTED = 3
_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class FileComparison:
    path: str  # relative to the run directory
    status: str
    detail: str = ""
    exclusions: list[int] = field(default_factory=list)  # indices that applied

    def to_json(self, exclusions: Sequence[Exclusion]) -> dict:
        return {
            "path": self.path,
            "status": self.status,
            "detail": self.detail,
            "exclusions": [exclusions[i].describe() for i in self.exclusions],
        }


@dataclass
class Comparison:
    """All files of both runs with their status (see the module doc)."""

    files: list[FileComparison]
    exclusions: tuple[Exclusion, ...]
    tolerance: Tolerance
    tolerance_rules: tuple[ToleranceRule, ...]

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(f.status for f in self.files)
        return {status: found.get(status, 0) for status in STATUSES}

    @property
    def reproduced(self) -> bool:
        counts = self.counts
        return not (counts["differs"] or counts["missing"] or counts["extra"])

    def exclusion_uses(self) -> list[int]:
        uses = [0] * len(self.exclusions)
        for f in self.files:
            for i in f.exclusions:
                uses[i] += 1
        return uses

    def to_json(self) -> dict:
        uses = self.exclusion_uses()
        return {
            "reproduced": self.reproduced,
            "counts": self.counts,
            "tolerance": {
                "rel": self.tolerance.rel,
                "abs": self.tolerance.abs,
                "rules": [
                    {
                        "paths": list(r.paths),
                        "rel": r.tolerance.rel,
                        "abs": r.tolerance.abs,
                        "reason": r.reason,
                    }
                    for r in self.tolerance_rules
                ],
            },
            "exclusions": [
                {
                    "paths": list(e.paths),
                    "fields": list(e.fields),
                    "reason": e.reason,
                    "applied_to": n,
                }
                for e, n in zip(self.exclusions, uses)
            ],
            "files": [f.to_json(self.exclusions) for f in self.files],
        }

    def report_lines(self) -> list[str]:
        counts = self.counts
        lines = [
            "comparison: "
            + ", ".join(f"{status} {counts[status]}" for status in STATUSES),
            f"tolerance: numbers agree within {self.tolerance.describe()}",
        ]
        for rule in self.tolerance_rules:
            lines.append(
                f"  {', '.join(rule.paths)}: {rule.tolerance.describe()} ({rule.reason})"
            )
        lines.append("exclusions (COMPARISON_EXCLUSIONS; files each applied to):")
        for exclusion, n in zip(self.exclusions, self.exclusion_uses()):
            lines.append(f"  {n:5d}  {exclusion.describe()}")
        for status in ("within_tolerance", "differs", "missing", "extra"):
            listed = [f for f in self.files if f.status == status]
            if listed:
                lines.append(f"{status}:")
                lines += [
                    f"  {f.path}" + (f": {f.detail}" if f.detail else "")
                    for f in listed
                ]
        return lines


# --------------------------------------------------------------------------- helpers


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Differences:
    """Collects differences (the first few in words) and the largest relative gap among
    numbers that were not equal but agreed within the tolerance."""

    def __init__(self, tolerance: Tolerance) -> None:
        self.tolerance = tolerance
        self.count = 0
        self.listed: list[str] = []
        self.largest_gap = 0.0

    def add(self, where: str, what: str) -> None:
        self.count += 1
        if len(self.listed) < _MAX_LISTED:
            self.listed.append(f"{where}: {what}" if where else what)

    def numbers(self, where: str, a: float, b: float) -> None:
        if a == b:
            return
        if not self.tolerance.close(a, b):
            self.add(where, f"{a!r} vs {b!r}")
            return
        scale = max(abs(a), abs(b))
        if scale > 0 and math.isfinite(scale):
            self.largest_gap = max(self.largest_gap, abs(a - b) / scale)

    def values(self, where: str, a: str, b: str) -> None:
        if a == b:
            return
        x, y = _as_number(a), _as_number(b)
        if x is None or y is None:
            self.add(where, f"{a!r} vs {b!r}")
        else:
            self.numbers(where, x, y)

    def describe(self) -> str:
        more = self.count - len(self.listed)
        return "; ".join(self.listed) + (f"; and {more} more" if more > 0 else "")


def _pattern_matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    return len(pattern) == len(path) and all(
        fnmatch.fnmatchcase(k, p) for p, k in zip(pattern, path)
    )


def _compare_json(
    a: Any,
    b: Any,
    path: tuple[str, ...],
    ignored: Sequence[tuple[str, ...]],
    diffs: _Differences,
    ignored_differing: set[str],
) -> None:
    for pattern in ignored:
        if _pattern_matches(pattern, path):
            if a != b:
                ignored_differing.add(".".join(pattern))
            return
    where = ".".join(path)
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        if type(a) is not type(b) or a != b:
            diffs.add(where, f"{a!r} vs {b!r}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        diffs.numbers(where, float(a), float(b))
    elif isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in b:
                diffs.add(".".join((*path, key)), "only in the archived run")
            elif key not in a:
                diffs.add(".".join((*path, key)), "only in the rerun")
            else:
                _compare_json(
                    a[key], b[key], (*path, key), ignored, diffs, ignored_differing
                )
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.add(where, f"{len(a)} items vs {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            _compare_json(x, y, (*path, str(i)), ignored, diffs, ignored_differing)
    elif a != b:
        diffs.add(where, f"{a!r} vs {b!r}")


def _json_content(
    old: bytes, new: bytes, ignored: Sequence[str], diffs: _Differences
) -> set[str]:
    try:
        a, b = json.loads(old), json.loads(new)
    except (ValueError, UnicodeDecodeError) as exc:
        diffs.add("", f"not JSON ({exc})")
        return set()
    ignored_differing: set[str] = set()
    patterns = [tuple(p.split(".")) for p in ignored]
    _compare_json(a, b, (), patterns, diffs, ignored_differing)
    return ignored_differing


def _table_content(
    old: bytes, new: bytes, delimiter: str, ignored: Sequence[str], diffs: _Differences
) -> set[str]:
    try:
        a = list(csv.reader(io.StringIO(old.decode()), delimiter=delimiter))
        b = list(csv.reader(io.StringIO(new.decode()), delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error) as exc:
        diffs.add("", f"not a readable table ({exc})")
        return set()
    if not a or not b or a[0] != b[0]:
        diffs.add("header", f"{a[:1]} vs {b[:1]}")
        return set()
    header = a[0]
    if len(a) != len(b):
        diffs.add("", f"{len(a) - 1} rows vs {len(b) - 1}")
        return set()
    skip = {
        i
        for i, name in enumerate(header)
        if any(fnmatch.fnmatchcase(name, p) for p in ignored)
    }
    ignored_differing: set[str] = set()
    for r, (row_a, row_b) in enumerate(zip(a[1:], b[1:]), start=1):
        if len(row_a) != len(row_b):
            diffs.add(f"row {r}", f"{len(row_a)} cells vs {len(row_b)}")
            continue
        for c, (x, y) in enumerate(zip(row_a, row_b)):
            name = header[c] if c < len(header) else str(c)
            if c in skip:
                if x != y:
                    ignored_differing.add(name)
            else:
                diffs.values(f"row {r}, {name}", x, y)
    return ignored_differing


def _text_content(old: bytes, new: bytes, diffs: _Differences) -> None:
    """Text equal apart from numbers that agree within the tolerance."""
    words_a, words_b = _NUMBER.split(old), _NUMBER.split(new)
    numbers_a, numbers_b = _NUMBER.findall(old), _NUMBER.findall(new)
    if words_a != words_b or len(numbers_a) != len(numbers_b):
        for i, (x, y) in enumerate(zip(words_a, words_b)):
            if x != y:
                offset = sum(len(w) for w in words_a[:i])
                diffs.add("", f"text differs near byte {offset}")
                return
        diffs.add("", "text differs")
        return
    for i, (x, y) in enumerate(zip(numbers_a, numbers_b)):
        diffs.values(f"number {i + 1}", x.decode(), y.decode())


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    if not data.startswith(_PNG_SIGNATURE):
        return None
    chunks, pos = [], len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_content(
    old: bytes, new: bytes, ignored: Sequence[str], diffs: _Differences
) -> set[str]:
    a, b = _png_chunks(old), _png_chunks(new)
    if a is None or b is None:
        diffs.add("", "not a PNG file")
        return set()
    skip = {k.encode() for k in ignored}

    def image(chunks: list[tuple[bytes, bytes]]) -> tuple[list, bytes | None]:
        kept = [(k, d) for k, d in chunks if k not in skip and k != b"IDAT"]
        try:
            pixels = zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT"))
        except zlib.error:
            pixels = None
        return kept, pixels

    (kept_a, pixels_a), (kept_b, pixels_b) = image(a), image(b)
    if pixels_a is None or pixels_b is None or pixels_a != pixels_b:
        diffs.add("", "pixels differ")
    if kept_a != kept_b:
        diffs.add("", "image header or palette chunks differ")
    return {
        k.decode()
        for k in skip
        if [d for c, d in a if c == k] != [d for c, d in b if c == k]
    }


def _pdf_values(data: bytes, key: str) -> list[bytes]:
    name = re.escape(key.lstrip("/").encode())
    return re.findall(rb"/" + name + rb"\s*(\([^)]*\)|<[^>]*>)", data)


def _pdf_without(data: bytes, keys: Sequence[str]) -> bytes:
    for key in keys:
        name = re.escape(key.lstrip("/").encode())
        data = re.sub(rb"/" + name + rb"\s*(\([^)]*\)|<[^>]*>)", b"", data)
    # a date of another length shifts the byte offsets in the xref table
    data = re.sub(rb"\bxref\s.*?trailer", b"xref trailer", data, flags=re.S)
    return re.sub(rb"startxref\s+\d+", b"startxref", data)


def _pdf_content(
    old: bytes, new: bytes, ignored: Sequence[str], diffs: _Differences
) -> set[str]:
    if _pdf_without(old, ignored) != _pdf_without(new, ignored):
        diffs.add("", "PDF content differs")
        return set()
    return {k for k in ignored if _pdf_values(old, k) != _pdf_values(new, k)}


def _npz_content(old: Path, new: Path, diffs: _Differences) -> None:
    import numpy as np  # only .npz outputs need it

    try:
        with (
            np.load(old, allow_pickle=False) as fa,
            np.load(new, allow_pickle=False) as fb,
        ):
            a = {k: fa[k] for k in fa.files}
            b = {k: fb[k] for k in fb.files}
    except (OSError, ValueError) as exc:
        diffs.add("", f"not a readable .npz file ({exc})")
        return
    if sorted(a) != sorted(b):
        diffs.add("", f"arrays {sorted(a)} vs {sorted(b)}")
        return
    tol = diffs.tolerance
    for key in sorted(a):
        x, y = a[key], b[key]
        if x.shape != y.shape or x.dtype != y.dtype:
            diffs.add(key, f"{x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
        elif np.issubdtype(x.dtype, np.inexact):
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            bound = np.maximum(tol.rel * np.maximum(abs(x64), abs(y64)), tol.abs)
            same_nan = np.isnan(x64) & np.isnan(y64)
            bad = ~((abs(x64 - y64) <= bound) | same_nan | (x64 == y64))
            if bad.any():
                i = tuple(int(j) for j in np.argwhere(bad)[0])
                diffs.add(
                    key,
                    f"{int(bad.sum())} values differ, first at {i}: {x[i]} vs {y[i]}",
                )
            else:
                scale = np.maximum(abs(x64), abs(y64))
                gaps = np.where(
                    scale > 0, abs(x64 - y64) / np.where(scale > 0, scale, 1), 0
                )
                finite = gaps[np.isfinite(gaps)]
                if finite.size:
                    diffs.largest_gap = max(diffs.largest_gap, float(finite.max()))
        elif not np.array_equal(x, y):
            diffs.add(key, "values differ")


# --------------------------------------------------------------------------- compare


def _tolerance_for(
    rel: str, default: Tolerance, rules: Sequence[ToleranceRule]
) -> tuple[Tolerance, str | None]:
    for rule in rules:
        if any(fnmatch.fnmatchcase(rel, p) for p in rule.paths):
            return rule.tolerance, rule.reason
    return default, None


def _is_record(data: bytes) -> bool:
    try:
        return is_run_record(json.loads(data))
    except (ValueError, UnicodeDecodeError):
        return False


def compare_file(
    rel: str,
    archived: Path,
    rerun: Path,
    *,
    exclusions: Sequence[Exclusion] = COMPARISON_EXCLUSIONS,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
    tolerance_rules: Sequence[ToleranceRule] = TOLERANCE_RULES,
) -> FileComparison:
    """Compare one file present in both runs (see the module doc)."""
    old, new = archived.read_bytes(), rerun.read_bytes()
    if old == new:
        return FileComparison(rel, "identical")
    suffix = PurePosixPath(rel).suffix.lower()
    is_record = suffix == ".json" and _is_record(old) and _is_record(new)
    applying = [
        i
        for i, e in enumerate(exclusions)
        if e.fields and e.matches(rel, is_record=is_record)
    ]
    ignored = [f for i in applying for f in exclusions[i].fields]
    tol, why = _tolerance_for(rel, tolerance, tolerance_rules)
    diffs = _Differences(tol)
    ignored_differing: set[str] = set()
    if suffix == ".json":
        ignored_differing = _json_content(old, new, ignored, diffs)
    elif suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        ignored_differing = _table_content(old, new, delimiter, ignored, diffs)
    elif suffix == ".png":
        ignored_differing = _png_content(old, new, ignored, diffs)
    elif suffix == ".pdf":
        ignored_differing = _pdf_content(old, new, ignored, diffs)
    elif suffix == ".npz":
        _npz_content(archived, rerun, diffs)
    elif suffix in _TEXT_SUFFIXES:
        _text_content(old, new, diffs)
    else:
        diffs.add(
            "",
            f"bytes differ (a {suffix or 'suffix-less'} file is compared byte by byte)",
        )
    if diffs.count:
        return FileComparison(rel, "differs", diffs.describe())
    used = [i for i in applying if set(exclusions[i].fields) & ignored_differing]
    notes = []
    if ignored_differing:
        notes.append("differs only in excluded " + ", ".join(sorted(ignored_differing)))
    if diffs.largest_gap > 0:
        rule = f" ({why})" if why else ""
        notes.append(
            f"numbers within relative {tol.rel:g}{rule}, largest relative difference "
            f"{diffs.largest_gap:.3g}"
        )
    return FileComparison(
        rel, "within_tolerance", "; ".join(notes) or "equal content", used
    )


def _archive_excluded(rel: str, archive_exclude: Sequence[str]) -> bool:
    return any(
        is_temp_name(part) or any(fnmatch.fnmatch(part, p) for p in archive_exclude)
        for part in PurePosixPath(rel).parts
    )


def run_files(run_dir: Path) -> dict[str, Path]:
    """Every regular file under ``run_dir`` by its POSIX path relative to it."""
    found = {}
    for dirpath, _dirnames, filenames in os.walk(run_dir):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file():
                found[path.relative_to(run_dir).as_posix()] = path
    return found


def compare_runs(
    archived: Mapping[str, Path],
    rerun: Mapping[str, Path],
    *,
    archive_exclude: Iterable[str] = (),
    exclusions: Sequence[Exclusion] = COMPARISON_EXCLUSIONS,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
    tolerance_rules: Sequence[ToleranceRule] = TOLERANCE_RULES,
) -> Comparison:
    """Compare two runs given as {path relative to the run directory: file}.

    ``archive_exclude``: the name patterns the archive left out (its manifest's
    ``exclude``), which select the :data:`ARCHIVE_EXCLUDED` entry.
    """
    archive_exclude = list(archive_exclude)
    files = []
    for rel in sorted(set(archived) | set(rerun)):
        whole = [
            i
            for i, e in enumerate(exclusions)
            if not e.fields
            and (
                e.matches(rel)
                or (
                    ARCHIVE_EXCLUDED in e.paths
                    and rel not in archived
                    and _archive_excluded(rel, archive_exclude)
                )
            )
        ]
        if whole:
            files.append(
                FileComparison(rel, "excluded", exclusions[whole[0]].reason, whole[:1])
            )
        elif rel not in rerun:
            files.append(FileComparison(rel, "missing", "not made by the rerun"))
        elif rel not in archived:
            files.append(FileComparison(rel, "extra", "made by the rerun only"))
        else:
            files.append(
                compare_file(
                    rel,
                    archived[rel],
                    rerun[rel],
                    exclusions=exclusions,
                    tolerance=tolerance,
                    tolerance_rules=tolerance_rules,
                )
            )
    return Comparison(files, tuple(exclusions), tolerance, tuple(tolerance_rules))
