"""Semantic checks of the ``credit`` config beyond the schema. Runs when the workflow is
parsed, so it imports neither torch nor snakemake.

Whether the ImageNet folder is given and usable is checked when the workflow builds
its jobs (``weightspace.credit.jobs.check_imagenet_job_inputs``), before any job
starts, so that a dry run of the paper plan works without the data.
"""

from __future__ import annotations

from collections.abc import Mapping

from weightspace.credit.jobs import own_settings
from weightspace.credit.presets import MNIST_SIDE, MODELS


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
    settings = own_settings(credit)
    twice = _listed_twice([entry["model"] for entry in credit["model_settings"]])
    if twice:
        problems.append(
            f"credit.model_settings lists {twice} more than once; give one entry per "
            "model"
        )
    lists = {
        f"credit.alignment.{key}": alignment[key]
        for key in ("coefficients", "rule_schedules")
    }
    drops = {"credit": credit["lr_drop_epochs"]}
    for model, own in settings.items():
        name = f"credit.model_settings.{model}"
        if "coefficients" in own:
            lists[f"{name}.coefficients"] = own["coefficients"]
        if own.get("lr_drop_epochs"):
            drops[name] = own["lr_drop_epochs"]
        pool = own.get("input_pool", 1)
        if pool > 1 and dataset != "mnist_subset":
            problems.append(
                f"{name}.input_pool is {pool}, but only the quick MNIST subset can be "
                f"pooled; remove it for credit.dataset {dataset!r}"
            )
        elif pool > 1 and MNIST_SIDE % pool:
            problems.append(
                f"{name}.input_pool {pool} does not divide the {MNIST_SIDE} x "
                f"{MNIST_SIDE} images; use 2, 4, 7 or 14"
            )
        if own.get("eval_every_steps") and credit["eval_every_epochs"] is not None:
            problems.append(
                f"{name}.eval_every_steps needs credit.eval_every_epochs: null (a model "
                "changes the step cadence, not the kind of cadence)"
            )
    for name, entries in lists.items():
        twice = _listed_twice([entry["rule"] for entry in entries])
        if twice:
            problems.append(
                f"{name} lists {twice} more than once; give one entry per rule"
            )
        for entry in entries:
            if "gamma" in entry and entry["rule"] != "information":
                problems.append(
                    f"{name}: {entry['rule']} has no gamma (only information "
                    "alignment has alpha, beta and gamma)"
                )
    for name, epochs in drops.items():
        if epochs and not credit["constant_lr"]:
            problems.append(
                f"{name}.lr_drop_epochs goes with constant_lr: true; the schedule of "
                "constant_lr: false has its own drops (epochs 30, 60, 80)"
            )
    if (credit["eval_every_steps"] is None) == (credit["eval_every_epochs"] is None):
        problems.append(
            "credit: give exactly one of eval_every_steps (quick: 25) and "
            "eval_every_epochs (paper: 2), and set the other to null"
        )
    return problems


def _listed_twice(values: list) -> list:
    return sorted({v for v in values if values.count(v) > 1})
