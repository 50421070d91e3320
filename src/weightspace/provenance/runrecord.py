"""Run records: the JSON file every compute job writes beside its result.

A record says what produced a result: the rule and wildcards, the resolved config slice, the
seeds, the code version (git commit and dirty flag of the repository holding the workflow),
package versions, device, host, SLURM job, start/end time, status, the job's metrics and the
checksums of the data it used. Typical use in a workflow script::

    rec = from_snakemake(snakemake, config_slice=cfg, seeds={"base": 0, "chunk": 3})
    with rec:
        rec.set_device(device)
        ...train...
        rec.metrics["test_accuracy"] = acc
        rec.add_data_file("mnist_train", path)

or without Snakemake::

    with RunRecord.start(out_dir / "record.json", rule="train", config=cfg, seeds=seeds) as rec:
        ...

The record is written atomically when the ``with`` block exits normally. If the block raises,
*nothing* is written by default (``on_error="skip"``): the job failed, Snakemake deletes its
outputs anyway, and a record must never claim a result that does not exist. The traceback is in
the job's log. ``on_error="write"`` writes a ``"failed"`` record instead, for records that are
not Snakemake outputs. A job that finishes but whose result is not a normal success sets the
status itself (``rec.set_status("diverged", "loss became NaN at epoch 12")``).

Records are recognised by their ``record_type`` field (not by file name), so the archive can
find them wherever the rules put them. :data:`RUN_RECORD_SCHEMA` is their JSON Schema.

Nothing here imports torch, numpy or snakemake: package versions come from
``importlib.metadata``, and torch is consulted only if the job has already imported it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json, to_jsonable

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "PACKAGES",
    "RECORD_TYPE",
    "RUN_RECORD_SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "RunRecord",
    "device_info",
    "file_entry",
    "from_snakemake",
    "git_info",
    "host_info",
    "is_run_record",
    "load_record",
    "package_versions",
    "sha256_file",
    "slurm_info",
    "utc_now_iso",
    "validate_record",
]

RECORD_TYPE = "weightspace.run_record"
SCHEMA_VERSION = 1

#: ``completed``: normal success. ``diverged``: ran to the end but the optimisation blew up (the
#: result is kept because the paper's figure may show it). ``partial``: fewer steps/samples than
#: asked (e.g. a time budget). ``skipped``: nothing to compute for this setting. ``failed``: only
#: written with ``on_error="write"`` or explicitly.
STATUSES = ("completed", "diverged", "partial", "skipped", "failed")

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

#: Inputs larger than this are listed with their size but not hashed (checkpoints, big arrays);
#: the data sets themselves are checksummed once by the data rules and go into ``data``.
DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024

_MAX_CHANGED_PATHS = 50
_GIT_TIMEOUT_S = 30

_SLURM_VARS = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "partition": "SLURM_JOB_PARTITION",
    "cluster_name": "SLURM_CLUSTER_NAME",
    "nodelist": "SLURM_JOB_NODELIST",
}


# --------------------------------------------------------------------------- environment facts


def utc_now_iso() -> str:
    """Current time as ISO 8601 in UTC with millisecond precision, e.g. ``2026-05-09T07:35:25.123Z``."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    """``{"path", "size", "sha256", "note"}`` for one input; large files and directories unhashed."""
    p = Path(path)
    entry: dict[str, Any] = {"path": str(path), "size": None, "sha256": None, "note": None}
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


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        timeout=_GIT_TIMEOUT_S,
        # Never prompt (credential helpers, pagers) inside a batch job.
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"},
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
        status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=normal")
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
    return {key: env.get(var) or None for key, var in _SLURM_VARS.items()}


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
        except Exception:  # a partially imported or stubbed torch must not break the record
            pass
        if resolved is not None and resolved.startswith("cuda"):
            try:
                info["cuda_name"] = torch.cuda.get_device_name(torch.device(resolved))
            except Exception as exc:
                info["cuda_name"] = None
                info["cuda_error"] = str(exc)
    return info


# --------------------------------------------------------------------------- schema


_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"], "minimum": 0}
_TIMESTAMP = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
}

RUN_RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://weightspace.invalid/schemas/run_record-1.json",
    "title": "weightspace run record",
    "type": "object",
    "required": [
        "record_type",
        "schema_version",
        "rule",
        "wildcards",
        "config",
        "seeds",
        "status",
        "status_reason",
        "start",
        "end",
        "duration_s",
        "git",
        "packages",
        "device",
        "host",
        "slurm",
        "job",
        "metrics",
        "data",
        "inputs",
        "notes",
    ],
    "additionalProperties": False,
    "properties": {
        "record_type": {"const": RECORD_TYPE},
        "schema_version": {"const": SCHEMA_VERSION},
        "rule": {"type": "string", "minLength": 1},
        "wildcards": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "config": {"description": "the resolved config slice the job used"},
        "seeds": {"type": "object"},
        "status": {"enum": list(STATUSES)},
        "status_reason": _NULLABLE_STR,
        "start": _TIMESTAMP,
        "end": _TIMESTAMP,
        "duration_s": {"type": "number", "minimum": 0},
        "git": {
            "type": "object",
            "required": ["commit", "dirty", "root", "changed_paths", "reason"],
            "additionalProperties": False,
            "properties": {
                "commit": {"type": ["string", "null"], "pattern": "^[0-9a-f]{40}([0-9a-f]{24})?$"},
                "dirty": {"type": ["boolean", "null"]},
                "root": _NULLABLE_STR,
                "changed_paths": {"type": "array", "items": {"type": "string"}},
                "reason": _NULLABLE_STR,
            },
        },
        "packages": {
            "type": "object",
            "required": ["python", *PACKAGES],
            "additionalProperties": _NULLABLE_STR,
        },
        "device": {
            "type": "object",
            "required": ["resolved", "cuda_name", "torch_threads", "job_threads"],
            "properties": {
                "resolved": _NULLABLE_STR,
                "cuda_name": _NULLABLE_STR,
                "torch_threads": _NULLABLE_INT,
                "job_threads": _NULLABLE_INT,
            },
        },
        "host": {
            "type": "object",
            "required": ["hostname", "platform", "machine", "cpu_count", "cpus_available"],
            "properties": {
                "hostname": {"type": "string"},
                "platform": {"type": "string"},
                "machine": {"type": "string"},
                "cpu_count": _NULLABLE_INT,
                "cpus_available": _NULLABLE_INT,
            },
        },
        "slurm": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": list(_SLURM_VARS),
                    "additionalProperties": False,
                    "properties": {
                        **{key: _NULLABLE_STR for key in _SLURM_VARS},
                        "job_id": {"type": "string", "minLength": 1},
                    },
                },
            ]
        },
        "job": {
            "type": "object",
            "required": ["threads", "resources", "params", "outputs", "log"],
            "properties": {
                "threads": _NULLABLE_INT,
                "resources": {"type": "object"},
                "params": {"type": "object"},
                "outputs": {"type": "array", "items": {"type": "string"}},
                "log": {"type": "array", "items": {"type": "string"}},
            },
        },
        "metrics": {"type": "object"},
        "data": {"type": "object"},
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "size", "sha256"],
                "properties": {
                    "path": {"type": "string"},
                    "size": _NULLABLE_INT,
                    "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                    "note": _NULLABLE_STR,
                },
            },
        },
        "notes": {"type": "array", "items": {"type": "string"}},
        "error": {"type": "string"},
    },
}


def is_run_record(obj: Any) -> bool:
    """True if ``obj`` (parsed JSON) claims to be a run record."""
    return isinstance(obj, dict) and obj.get("record_type") == RECORD_TYPE


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``record`` does not match :data:`RUN_RECORD_SCHEMA`."""
    import jsonschema  # only needed when validating

    jsonschema.Draft202012Validator(RUN_RECORD_SCHEMA).validate(record)


def load_record(path: str | os.PathLike[str], *, validate: bool = True) -> dict:
    """Read a run record; with ``validate`` check it against the schema first."""
    with open(path, encoding="utf-8") as fh:
        record = json.load(fh)
    if not is_run_record(record):
        raise ValueError(f"{path} is not a weightspace run record (record_type missing or wrong)")
    if validate:
        validate_record(record)
    return record


# --------------------------------------------------------------------------- the record


def _plain(value: Any) -> Any:
    # Snakemake params/resources can hold callables or other objects; keep what is JSON-able.
    try:
        return to_jsonable(value)
    except (TypeError, ValueError):
        return repr(value)


class RunRecord:
    """Builder for one run record; a context manager that writes it when the block succeeds.

    Public mutable attributes a job fills in: ``metrics`` (dict), ``data`` (dict: checksums of
    data files, see :meth:`add_data_file`), ``inputs`` (list, see :meth:`add_inputs`), ``notes``
    (list of str), ``seeds`` (dict), and ``status``/``status_reason`` via :meth:`set_status`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rule: str,
        wildcards: Mapping[str, Any] | None = None,
        config: Any = None,
        seeds: Mapping[str, Any] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        device: Any = None,
        threads: int | None = None,
        job: Mapping[str, Any] | None = None,
        on_error: str = "skip",
    ) -> None:
        if on_error not in ("skip", "write"):
            raise ValueError(f"on_error must be 'skip' or 'write', got {on_error!r}")
        if not rule:
            raise ValueError("rule must be a non-empty string")
        self.path = Path(path)
        self.rule = str(rule)
        self.wildcards: dict[str, Any] = dict(wildcards or {})
        self.config = config
        self.seeds: dict[str, Any] = dict(seeds or {})
        self.workdir = Path(workdir) if workdir is not None else Path.cwd()
        self.device = device
        self.threads = threads
        self.job: dict[str, Any] = {
            "threads": threads,
            "resources": {},
            "params": {},
            "outputs": [],
            "log": [],
            **dict(job or {}),
        }
        self.on_error = on_error
        self.metrics: dict[str, Any] = {}
        self.data: dict[str, Any] = {}
        self.inputs: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.status = "completed"
        self.status_reason: str | None = None
        self.error: str | None = None
        self.start_time: str | None = None
        self.end_time: str | None = None
        self.duration_s: float | None = None
        self._t0: float | None = None
        self.git: dict | None = None
        self.packages: dict | None = None
        self.host: dict | None = None
        self.slurm: dict | None = None
        self.written = False

    # -- lifecycle

    @classmethod
    def start(cls, path: str | os.PathLike[str], **kwargs: Any) -> "RunRecord":
        """Create a record and capture the start time and environment (git, packages, host, SLURM)."""
        rec = cls(path, **kwargs)
        rec.begin()
        return rec

    def begin(self) -> "RunRecord":
        """Capture the start time and environment; called by :meth:`start` and ``__enter__``."""
        if self._t0 is None:
            self._t0 = time.monotonic()
            self.start_time = utc_now_iso()
            # Git state is taken at the start: that is the code the job actually loaded.
            self.git = git_info(self.workdir)
            self.packages = package_versions()
            self.host = host_info()
            self.slurm = slurm_info()
        return self

    def __enter__(self) -> "RunRecord":
        return self.begin()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish()
        elif self.on_error == "write" and isinstance(exc, Exception):
            self.error = "".join(traceback.format_exception_only(exc_type, exc)).strip()
            self.finish("failed", reason=self.error)
        return False  # never swallow the exception

    def finish(self, status: str | None = None, reason: str | None = None) -> Path:
        """Stamp the end time and write the record atomically; returns its path."""
        if status is not None:
            self.set_status(status, reason)
        self.begin()
        self.end_time = utc_now_iso()
        self.duration_s = max(0.0, time.monotonic() - (self._t0 or time.monotonic()))
        record = self.to_dict()
        atomic_write_json(self.path, record)
        self.written = True
        return self.path

    # -- filling in

    def set_status(self, status: str, reason: str | None = None) -> None:
        """Set the outcome (one of :data:`STATUSES`) and an optional human-readable reason."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {STATUSES}")
        self.status = status
        self.status_reason = reason

    def set_device(self, device: Any, threads: int | None = None) -> None:
        """Record the resolved device (``"cpu"``, ``"cuda:0"``, a ``torch.device``)."""
        self.device = device
        if threads is not None:
            self.threads = threads

    def add_inputs(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        max_bytes: int | None = DEFAULT_MAX_INPUT_BYTES,
    ) -> None:
        """Append inputs with size and sha256 (files above ``max_bytes`` are listed unhashed)."""
        seen = {entry["path"] for entry in self.inputs}
        for p in paths:
            if str(p) in seen:
                continue
            seen.add(str(p))
            self.inputs.append(file_entry(p, max_bytes=max_bytes))

    def add_data_file(self, name: str, path: str | os.PathLike[str]) -> str:
        """Checksum a data file into ``data[name]`` (``{"path", "size", "sha256"}``); return the hash."""
        digest = sha256_file(path)
        self.data[name] = {"path": str(path), "size": Path(path).stat().st_size, "sha256": digest}
        return digest

    # -- output

    def to_dict(self) -> dict:
        """The record as plain JSON data (non-finite floats become ``null`` and are noted)."""
        self.begin()
        end = self.end_time or utc_now_iso()
        duration = self.duration_s
        if duration is None:
            duration = max(0.0, time.monotonic() - (self._t0 or time.monotonic()))
        record: dict[str, Any] = {
            "record_type": RECORD_TYPE,
            "schema_version": SCHEMA_VERSION,
            "rule": self.rule,
            "wildcards": self.wildcards,
            "config": self.config,
            "seeds": self.seeds,
            "status": self.status,
            "status_reason": self.status_reason,
            "start": self.start_time,
            "end": end,
            "duration_s": round(duration, 6),
            "git": self.git,
            "packages": self.packages,
            # Threads are read at the end: jobs usually set torch threads after starting the record.
            "device": device_info(self.device, self.threads),
            "host": self.host,
            "slurm": self.slurm,
            "job": {**self.job, "threads": self.threads},
            "metrics": self.metrics,
            "data": self.data,
            "inputs": self.inputs,
            "notes": list(self.notes),
        }
        if self.error is not None:
            record["error"] = self.error
        nonfinite: list[str] = []
        plain = to_jsonable(record, nonfinite="null", nonfinite_paths=nonfinite)
        if nonfinite:
            plain["notes"].append(
                "non-finite floats (NaN/inf) written as null at: " + ", ".join(nonfinite)
            )
        return plain


def _named(namedlist: Any) -> dict[str, Any]:
    if namedlist is None:
        return {}
    if hasattr(namedlist, "items"):
        return {str(k): v for k, v in namedlist.items() if not str(k).startswith("_")}
    return {}


def from_snakemake(
    snakemake: Any,
    record_path: str | os.PathLike[str] | None = None,
    config_slice: Any = None,
    seeds: Mapping[str, Any] | None = None,
    *,
    device: Any = None,
    workdir: str | os.PathLike[str] | None = None,
    hash_inputs: bool = True,
    max_input_bytes: int | None = DEFAULT_MAX_INPUT_BYTES,
    on_error: str = "skip",
) -> RunRecord:
    """Start a :class:`RunRecord` from the ``snakemake`` object of a workflow script.

    Takes rule, wildcards, threads, resources, params, output and log paths from ``snakemake``.
    ``record_path`` defaults to the output named ``record``. ``config_slice`` defaults to the
    param named ``config`` (parsed if it is the canonical-JSON string the rules pass). The git
    state is read from the repository containing the script (``snakemake.scriptdir``) unless
    ``workdir`` is given. Inputs are hashed unless ``hash_inputs`` is false.
    Snakemake itself is never imported.
    """
    output = getattr(snakemake, "output", None)
    if record_path is None:
        record_path = output.get("record") if hasattr(output, "get") else None
        if record_path is None:
            raise ValueError(
                "from_snakemake: pass record_path or name an output 'record' in the rule"
            )
    params = _named(getattr(snakemake, "params", None))
    if config_slice is None and "config" in params:
        config_slice = params["config"]
        if isinstance(config_slice, str):
            config_slice = json.loads(config_slice)
        # Already recorded under "config"; do not store it twice.
        params = {k: v for k, v in params.items() if k != "config"}
    if workdir is None:
        workdir = getattr(snakemake, "scriptdir", None) or Path.cwd()
    threads = getattr(snakemake, "threads", None)
    job = {
        "resources": {
            k: _plain(v) for k, v in _named(getattr(snakemake, "resources", None)).items()
        },
        "params": {k: _plain(v) for k, v in params.items()},
        "outputs": [str(p) for p in (output or [])],
        "log": [str(p) for p in (getattr(snakemake, "log", None) or [])],
    }
    rec = RunRecord(
        record_path,
        rule=getattr(snakemake, "rule", None) or "unknown",
        wildcards={
            str(k): str(v) for k, v in _named(getattr(snakemake, "wildcards", None)).items()
        },
        config=config_slice,
        seeds=seeds,
        workdir=workdir,
        device=device,
        threads=int(threads) if threads is not None else None,
        job=job,
        on_error=on_error,
    )
    rec.begin()
    if hash_inputs:
        rec.add_inputs(
            [str(p) for p in (getattr(snakemake, "input", None) or [])], max_bytes=max_input_bytes
        )
    return rec
