"""The run record's JSON Schema and the readers that check it.

Records are recognised by their ``record_type`` field (not by file name), so the
archive can find them wherever the rules put them. :data:`RUN_RECORD_SCHEMA` describes
the fields that :class:`weightspace.provenance.runrecord.RunRecord` writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from .environment import PACKAGES, SLURM_VARS

__all__ = [
    "RECORD_TYPE",
    "RUN_RECORD_SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "is_run_record",
    "load_record",
    "validate_record",
]

RECORD_TYPE = "weightspace.run_record"
SCHEMA_VERSION = 1

#: ``completed``: normal success. ``diverged``: ran to the end but the optimisation
#: blew up (the result is kept because the paper's figure may show it). ``partial``:
#: fewer steps/samples than asked (e.g. a time budget). ``skipped``: nothing to compute
#: for this setting. ``failed``: only written with ``on_error="write"`` or explicitly.
STATUSES = ("completed", "diverged", "partial", "skipped", "failed")


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
                "commit": {
                    "type": ["string", "null"],
                    "pattern": "^[0-9a-f]{40}([0-9a-f]{24})?$",
                },
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
            "required": [
                "hostname",
                "platform",
                "machine",
                "cpu_count",
                "cpus_available",
            ],
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
                    "required": list(SLURM_VARS),
                    "additionalProperties": False,
                    "properties": {
                        **{key: _NULLABLE_STR for key in SLURM_VARS},
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
    """Raise ``jsonschema.ValidationError`` if ``record`` does not match
    :data:`RUN_RECORD_SCHEMA`."""
    import jsonschema  # only needed when validating

    jsonschema.Draft202012Validator(RUN_RECORD_SCHEMA).validate(record)


def load_record(path: str | os.PathLike[str], *, validate: bool = True) -> dict:
    """Read a run record; with ``validate`` check it against the schema first."""
    with open(path, encoding="utf-8") as fh:
        record = json.load(fh)
    if not is_run_record(record):
        raise ValueError(
            f"{path} is not a weightspace run record (record_type missing or wrong)"
        )
    if validate:
        validate_record(record)
    return record
