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

The facts a record holds about where the job ran come from :mod:`.environment`, the
checksums of its inputs from :mod:`.files`; the schema that every record satisfies, and
its readers, are in :mod:`.record_schema`. Nothing here imports torch, numpy or
snakemake.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json, to_jsonable
from .environment import (
    PACKAGES,
    device_info,
    git_info,
    host_info,
    package_versions,
    slurm_info,
    utc_now_iso,
)
from .files import DEFAULT_MAX_INPUT_BYTES, file_entry, sha256_file
from .record_schema import (
    RECORD_TYPE,
    RUN_RECORD_SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    is_run_record,
    load_record,
    validate_record,
)

# The names of .environment, .files and .record_schema can still be imported from here,
# as from the package.
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
        self.data[name] = {
            "path": str(path),
            "size": Path(path).stat().st_size,
            "sha256": digest,
        }
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
                "non-finite floats (NaN/inf) written as null at: "
                + ", ".join(nonfinite)
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
            k: _plain(v)
            for k, v in _named(getattr(snakemake, "resources", None)).items()
        },
        "params": {k: _plain(v) for k, v in params.items()},
        "outputs": [str(p) for p in (output or [])],
        "log": [str(p) for p in (getattr(snakemake, "log", None) or [])],
    }
    rec = RunRecord(
        record_path,
        rule=getattr(snakemake, "rule", None) or "unknown",
        wildcards={
            str(k): str(v)
            for k, v in _named(getattr(snakemake, "wildcards", None)).items()
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
            [str(p) for p in (getattr(snakemake, "input", None) or [])],
            max_bytes=max_input_bytes,
        )
    return rec
