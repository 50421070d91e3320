"""Provenance: atomic writes and canonical JSON (``atomic``), run records
(``runrecord``), the facts they hold about the environment (``environment``) and the
files used (``files``), and the schema records satisfy (``record_schema``).

The reproducibility archive built from a finished run is :mod:`weightspace.archive`.
"""

from .atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    canonical_json,
    is_temp_name,
    read_json,
    to_jsonable,
)
from .environment import git_info, package_versions, slurm_info
from .files import sha256_file
from .record_schema import (
    RECORD_TYPE,
    RUN_RECORD_SCHEMA,
    STATUSES,
    is_run_record,
    load_record,
    validate_record,
)
from .runrecord import RunRecord, from_snakemake

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
