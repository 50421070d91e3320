"""Semantic checks of the ``rbd`` config beyond the schema. Runs when the workflow is
parsed, so it imports neither torch nor snakemake."""

from __future__ import annotations

from collections.abc import Mapping

from weightspace.rbd.presets import LEARNING_RATES, PRESET_DATASET


def check(config: Mapping) -> list[str]:
    table = config["rbd"]["table1"]
    problems = []
    for network in table["networks"]:
        for dataset in table["datasets"]:
            if (network, PRESET_DATASET.get(dataset, dataset)) not in LEARNING_RATES:
                problems.append(
                    f"rbd.table1: no learning-rate preset for {network} on {dataset}"
                )
    if table["runs_per_job"] > table["seeds"]:
        problems.append(
            f"rbd.table1.runs_per_job ({table['runs_per_job']}) exceeds seeds "
            f"({table['seeds']}); use at most {table['seeds']}"
        )
    return problems
