"""Checks the data rules run when the workflow builds its DAG (rules/data.smk)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

_ANNOUNCED: set[tuple] = set()


def torchvision_job_inputs(config: Mapping, name: str) -> list:
    """No input files; raises DatasetNotFoundError, before any job runs, when the data set
    `name` is missing under data.root and may not be downloaded. Imports torchvision (seconds)
    only when called: only paper-scale data sets need it. Says once per data set, also in
    a dry run, which data the run needs and where it looks for it."""
    from weightspace.data.torchvision_sets import (
        check_dataset_available,
        dataset_folder,
        missing_files,
    )

    root, download = config["data"]["root"], config["data"]["download"]
    check_dataset_available(name, root, download)
    key = (name, str(root), bool(download))
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        absolute = Path(root).expanduser().absolute()
        state = (
            "present"
            if not missing_files(name, absolute)
            else "missing: the job downloads it (data.download is true)"
        )
        print(
            f"data needed: {name} in {dataset_folder(name, absolute)} ({state})",
            file=sys.stderr,
        )
    return []
