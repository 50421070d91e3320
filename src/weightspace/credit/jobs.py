"""How the credit-assignment experiments are cut into jobs and what each reads of the
config. Pure Python, read when the workflow is parsed (no torch).

A *cell* is one (model, update-noise variance) on the configured data set; it holds the
runs, (rule variant, seed index), that any target asks of it: credit_table_rules and
credit_fig_alignment read the noiseless cells of their models, credit_fig_noise the
cells of its model at each variance (its variance 0 is the table's cell when the model
is in the table, so those runs are trained once). A cell's runs, in the spec's rule
order and then by seed, are cut into jobs of ``credit.runs_per_job`` runs: several
runs per job at quick scale, one run per GPU job at paper scale. A job's file is named
``chunk<k>_<variants>`` by the variants it holds.

A model may change some settings for its own runs (``credit.model_settings``: epochs,
learning rate and its drops, evaluation cadence, coefficient scale, a rule's own
coefficients, input pooling, the table's seeds; ``model_settings``).

A run's initial weights and minibatch order depend on (model, seed index) only, not on
the rule or the noise, so rules and noise levels are compared on the same draws.
"""

from __future__ import annotations

from collections.abc import Mapping

from weightspace.credit.presets import VARIANT_ORDER, rule_of, uses_noise_inputs
from weightspace.pipeline.chunks import split_runs

TARGETS = ("table_rules", "fig_alignment", "fig_noise")
# keys of credit every training job reads
PROTOCOL = (
    "batch_size",
    "max_steps_per_epoch",
    "optimizer",
    "learning_rate",
    "constant_lr",
    "lr_drop_epochs",
    "warmup_epochs",
    "weight_decay",
    "eval_every_steps",
    "eval_every_epochs",
    "eval_batch_size",
    "drop_eval_remainder",
    "probe_batch",
    "checkpoint_every_steps",
    "num_workers",
)


def own_settings(credit: Mapping) -> dict[str, dict]:
    """{model: its own settings} of ``credit.model_settings`` (a list of entries with a
    ``model`` key, so that a later config file replaces it whole)."""
    return {
        entry["model"]: {k: v for k, v in entry.items() if k != "model"}
        for entry in credit.get("model_settings") or []
    }


def model_settings(credit: Mapping, model: str) -> dict:
    """What ``model``'s runs use of the settings a model may change: ``credit``'s own,
    with the model's entry of ``credit.model_settings`` over them (e.g. a quick ResNet
    that needs a larger step, or smaller inputs to fit the CPU budget)."""
    own = own_settings(credit).get(model, {})
    defaults = {
        "epochs": credit["epochs"],
        "learning_rate": credit["learning_rate"],
        "lr_drop_epochs": credit["lr_drop_epochs"],
        "eval_every_steps": credit["eval_every_steps"],
        "coefficient_scale": credit["alignment"]["coefficient_scale"],
        "coefficients": credit["alignment"]["coefficients"],
        "input_pool": 1,
    }
    return {key: own.get(key, value) for key, value in defaults.items()}


def table_seeds(credit: Mapping) -> dict[str, int]:
    """{model: seeds} of credit_table_rules (``table_rules.seeds`` unless the model's
    settings give ``table_seeds``); reads only ``table_rules`` and ``model_settings``."""
    table, own = credit["table_rules"], own_settings(credit)
    return {
        model: own.get(model, {}).get("table_seeds", table["seeds"])
        for model in table["models"]
    }


def noise_label(variance: float) -> str:
    """The variance as it appears in paths (``noise0``, ``noise0.01``)."""
    return f"{float(variance):g}"


def _cells(config: Mapping) -> dict[tuple[str, str], dict]:
    """{(model, noise label): {"variance", "runs"}} of every cell some target asks for."""
    credit = config["credit"]
    wanted: dict[tuple[str, str], dict] = {}

    def add(model, variance, variants, seeds):
        cell = wanted.setdefault(
            (model, noise_label(variance)), {"variance": float(variance), "runs": set()}
        )
        cell["runs"] |= {(v, s) for v in variants for s in range(seeds)}

    table = credit["table_rules"]
    for model, seeds in table_seeds(credit).items():
        add(model, 0.0, table["rules"], seeds)
    noise = credit["fig_noise"]
    for variance in noise["variances"]:
        add(noise["model"], variance, noise["rules"], noise["seeds"])
    for cell in wanted.values():
        cell["runs"] = sorted(
            cell["runs"], key=lambda run: (VARIANT_ORDER.index(run[0]), run[1])
        )
    return wanted


def _variants_label(runs) -> str:
    return "+".join(dict.fromkeys(variant for variant, _ in runs))


def cell_jobs(config: Mapping, model: str, noise: str) -> list[tuple[int, str]]:
    """(chunk, variants label) of every job of the cell (model, noise label)."""
    cell = _cells(config).get((model, noise))
    if cell is None:
        return []
    per_job = config["credit"]["runs_per_job"]
    return [
        (k, _variants_label(chunk))
        for k, chunk in enumerate(split_runs(cell["runs"], per_job))
    ]


def target_cells(config: Mapping, target: str) -> list[tuple[str, str]]:
    """(model, noise label) of the cells a target reads."""
    credit = config["credit"]
    if target == "table_rules":
        return [(m, noise_label(0.0)) for m in credit["table_rules"]["models"]]
    if target == "fig_alignment":
        return [(m, noise_label(0.0)) for m in credit["fig_alignment"]["models"]]
    if target == "fig_noise":
        noise = credit["fig_noise"]
        return [(noise["model"], noise_label(v)) for v in noise["variances"]]
    raise ValueError(f"unknown credit target {target!r}; choose one of {TARGETS}")


def target_jobs(config: Mapping, target: str) -> list[tuple[str, str, str, int, str]]:
    """(data set, model, noise label, chunk, variants) of every job a target reads."""
    dataset = config["credit"]["dataset"]
    return [
        (dataset, model, noise, chunk, variants)
        for model, noise in target_cells(config, target)
        for chunk, variants in cell_jobs(config, model, noise)
    ]


def all_jobs(config: Mapping) -> list[tuple[str, str, str, int, str]]:
    """Every training job of the three targets, each once."""
    jobs = [job for target in TARGETS for job in target_jobs(config, target)]
    return list(dict.fromkeys(jobs))


def train_job_config(
    config: Mapping, dataset: str, model: str, noise: str, chunk: int, variants: str
) -> dict:
    """What the training job (dataset, model, noise, chunk, variants) reads."""
    credit = config["credit"]
    if dataset != credit["dataset"]:
        raise ValueError(
            f"credit job on {dataset!r}, but credit.dataset is {credit['dataset']!r}"
        )
    cell = _cells(config).get((model, noise))
    chunks = split_runs(cell["runs"], credit["runs_per_job"]) if cell else []
    if chunk >= len(chunks) or _variants_label(chunks[chunk]) != variants:
        raise ValueError(
            f"no credit training job {model}/noise{noise}/chunk{chunk}_{variants} in "
            f"this config; its jobs are {cell_jobs(config, model, noise)}"
        )
    runs = chunks[chunk]
    settings = model_settings(credit, model)
    rules = sorted({rule_of(v) for v, _ in runs})
    alignment = credit["alignment"]
    # the config's lists of per-rule settings, as {rule: settings} of this job's rules
    coefficients = {
        entry["rule"]: {k: v for k, v in entry.items() if k != "rule"}
        for entry in settings["coefficients"]
        if entry["rule"] in rules
    }
    schedules = {
        entry["rule"]: {k: v for k, v in entry.items() if k != "rule"}
        for entry in alignment["rule_schedules"]
        if entry["rule"] in rules
    }
    job = {
        "seed": config["seed"],
        "device": config["device"],
        "dataset": dataset,
        "model": model,
        "runs": [{"variant": v, "seed_index": s} for v, s in runs],
        "noise": {"variance": cell["variance"]},
        "input_pool": settings["input_pool"],
        "epochs": settings["epochs"],
        "protocol": {
            **{k: credit[k] for k in PROTOCOL},
            "learning_rate": settings["learning_rate"],
            "lr_drop_epochs": settings["lr_drop_epochs"],
            "eval_every_steps": settings["eval_every_steps"],
        },
        "alignment": {
            "coefficient_scale": settings["coefficient_scale"],
            "coefficients": coefficients,
            "rule_schedules": schedules,
        },
    }
    if cell["variance"] > 0:
        job["noise"]["distribution"] = credit["fig_noise"]["distribution"]
    if "kolen_pollack" in rules:
        job["alignment"]["kp_alpha"] = alignment["kp_alpha"]
    if any(uses_noise_inputs(v) for v, _ in runs):
        job["alignment"]["noise_inputs"] = dict(alignment["noise_inputs"])
    if dataset == "imagenet":
        job["data"] = {"imagenet_root": config["data"]["imagenet_root"]}
    return job


def check_imagenet_job_inputs(config: Mapping) -> list:
    """No input files; raises ValueError, before any job runs, when the ImageNet folder
    the paper-scale runs read is not given or not usable (imports torchvision only
    when called)."""
    root = config["data"]["imagenet_root"]
    if root is None:
        raise ValueError(
            "credit: credit.dataset is imagenet but data.imagenet_root is null; set it "
            "to your ImageNet folder (train/<wnid>/... and val/<wnid>/...), e.g. "
            "`--config \"data={'imagenet_root': '/path/to/imagenet'}\"` or in your "
            "config file (config/README.md)"
        )
    from weightspace.data.imagenet import check_imagenet_available

    try:
        check_imagenet_available(root, splits=("train", "val"))
    except (OSError, ValueError) as error:
        raise ValueError(f"credit: {error}") from None
    return []
