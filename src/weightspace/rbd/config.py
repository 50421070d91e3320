"""Semantic checks of the ``rbd`` config beyond the schema. Runs when the workflow is
parsed, so it imports neither torch nor snakemake."""

from __future__ import annotations

from collections.abc import Mapping

from weightspace.rbd.jobs import EXPERIMENTS, experiment_runs
from weightspace.rbd.presets import LEARNING_RATES, PRESET_DATASET


def check(config: Mapping) -> list[str]:
    rbd = config["rbd"]
    problems = []
    if rbd["generator"] == "philox" and str(config["device"]).startswith("cuda"):
        problems.append(
            f"rbd.generator 'philox' draws on the CPU but device is "
            f"{config['device']!r}; set rbd.generator to 'torch' for GPU runs"
        )
    for experiment in EXPERIMENTS:
        runs = experiment_runs(config, experiment)
        for network, dataset in sorted({(r["network"], r["dataset"]) for r in runs}):
            if (network, PRESET_DATASET.get(dataset, dataset)) not in LEARNING_RATES:
                problems.append(
                    f"rbd.{experiment}: no learning-rate preset for {network} on "
                    f"{dataset}"
                )
        per = rbd[experiment]["runs_per_job"]
        if per > len(runs):
            problems.append(
                f"rbd.{experiment}.runs_per_job ({per}) exceeds its {len(runs)} runs; "
                f"use at most {len(runs)}"
            )
    names = [s["name"] for s in rbd["fig_compartments"]["settings"]]
    if len(set(names)) != len(names):
        problems.append(
            f"rbd.fig_compartments.settings: names must be unique, got {names}"
        )
    for setting in rbd["fig_compartments"]["settings"]:
        n = setting["weights_per_compartment"]
        if n == 0 or (n < 0 and n != int(n)):
            problems.append(
                f"rbd.fig_compartments.settings {setting['name']}: "
                f"weights_per_compartment must be > 0 or a negative integer -m, got {n}"
            )
    return problems
