"""Checks the data rules run when the workflow builds its DAG (rules/data.smk)."""

from __future__ import annotations

from collections.abc import Mapping


def torchvision_job_inputs(config: Mapping, name: str) -> list:
    """No input files; raises DatasetNotFoundError, before any job runs, when the data set
    `name` is missing under data.root and may not be downloaded. Imports torchvision (seconds)
    only when called: only paper-scale data sets need it."""
    from weightspace.data.torchvision_sets import check_dataset_available

    check_dataset_available(name, config["data"]["root"], config["data"]["download"])
    return []
