"""Semantic checks of the ``credit`` config beyond the schema. Runs when the workflow is
parsed, so it imports neither torch nor snakemake.

Whether the ImageNet folder is given and usable is checked when the workflow builds
its jobs (``weightspace.credit.jobs.check_imagenet_job_inputs``), before any job
starts, so that a dry run of the paper plan works without the data.
"""

from __future__ import annotations

from collections.abc import Mapping

from weightspace.credit.presets import MODELS


def check(config: Mapping) -> list[str]:
    credit = config["credit"]
    dataset = credit["dataset"]
    table = credit["table_rules"]
    figure = credit["fig_alignment"]
    noise = credit["fig_noise"]
    problems = []
    used = [*table["models"], *figure["models"], noise["model"]]
    for model in dict.fromkeys(used):
        if model not in MODELS[dataset]:
            problems.append(
                f"credit: model {model!r} does not go with credit.dataset {dataset!r}; "
                f"use one of {', '.join(MODELS[dataset])}"
            )
    for key in ("models", "rules"):
        extra = [v for v in figure[key] if v not in table[key]]
        if extra:
            problems.append(
                f"credit.fig_alignment.{key} {extra} are not in credit.table_rules."
                f"{key}: the alignment figure plots the table's runs; add them there"
            )
    alignment = credit["alignment"]
    for key in ("coefficients", "rule_schedules"):
        rules = [entry["rule"] for entry in alignment[key]]
        twice = sorted({r for r in rules if rules.count(r) > 1})
        if twice:
            problems.append(
                f"credit.alignment.{key} lists {twice} more than once; give one entry "
                "per rule"
            )
    for entry in alignment["coefficients"]:
        if "gamma" in entry and entry["rule"] != "information":
            problems.append(
                f"credit.alignment.coefficients: {entry['rule']} has no gamma (only "
                "information alignment has alpha, beta and gamma)"
            )
    if (credit["eval_every_steps"] is None) == (credit["eval_every_epochs"] is None):
        problems.append(
            "credit: give exactly one of eval_every_steps (quick: 25) and "
            "eval_every_epochs (paper: 2), and set the other to null"
        )
    return problems
