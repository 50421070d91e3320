"""Provenance: atomic writes, canonical JSON, run records (see ``runrecord``).

The reproducibility archive built from a finished run lives in :mod:`weightspace.archive`.
"""

from .atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_json,
    canonical_json,
    is_temp_name,
    to_jsonable,
)
from .runrecord import (
    RECORD_TYPE,
    RUN_RECORD_SCHEMA,
    STATUSES,
    RunRecord,
    from_snakemake,
    git_info,
    is_run_record,
    load_record,
    package_versions,
    sha256_file,
    slurm_info,
    validate_record,
)

__all__ = [
    "RECORD_TYPE",
    "RUN_RECORD_SCHEMA",
    "STATUSES",
    "RunRecord",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "canonical_json",
    "from_snakemake",
    "git_info",
    "is_run_record",
    "is_temp_name",
    "load_record",
    "package_versions",
    "sha256_file",
    "slurm_info",
    "to_jsonable",
    "validate_record",
]
