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
    models = [entry["model"] for entry in credit["model_settings"]]
    twice = sorted({m for m in models if models.count(m) > 1})
    if twice:
        problems.append(
            f"credit.model_settings lists {twice} more than once; give one entry per "
            "model"
        )
    lists = {
        f"credit.alignment.{key}": alignment[key]
        for key in ("coefficients", "rule_schedules")
    }
    lists.update(
        {
            f"credit.model_settings.{m}.coefficients": own["coefficients"]
            for m, own in settings.items()
            if "coefficients" in own
        }
    )
    for name, entries in lists.items():
        rules = [entry["rule"] for entry in entries]
        twice = sorted({r for r in rules if rules.count(r) > 1})
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
    drops = {"credit": credit["lr_drop_epochs"]}
    drops.update(
        {
            f"credit.model_settings.{m}": own["lr_drop_epochs"]
            for m, own in settings.items()
            if own.get("lr_drop_epochs")
        }
    )
    for name, epochs in drops.items():
        if epochs and not credit["constant_lr"]:
            problems.append(
                f"{name}.lr_drop_epochs goes with constant_lr: true; the schedule of "
                "constant_lr: false has its own drops (epochs 30, 60, 80)"
            )
    for model, own in settings.items():
        pool = own.get("input_pool", 1)
        if pool > 1 and dataset != "mnist_subset":
            problems.append(
                f"credit.model_settings.{model}.input_pool is {pool}, but only the "
                "quick MNIST subset can be pooled; remove it for credit.dataset "
                f"{dataset!r}"
            )
        elif pool > 1 and MNIST_SIDE % pool:
            problems.append(
                f"credit.model_settings.{model}.input_pool {pool} does not divide the "
                f"{MNIST_SIDE} x {MNIST_SIDE} images; use 2, 4, 7 or 14"
            )
    for model, own in settings.items():
        if own.get("eval_every_steps") and credit["eval_every_epochs"] is not None:
            problems.append(
                f"credit.model_settings.{model}.eval_every_steps needs "
                "credit.eval_every_epochs: null (a model changes the step cadence, not "
                "the kind of cadence)"
            )
    if (credit["eval_every_steps"] is None) == (credit["eval_every_epochs"] is None):
        problems.append(
            "credit: give exactly one of eval_every_steps (quick: 25) and "
            "eval_every_epochs (paper: 2), and set the other to null"
        )
    return problems
