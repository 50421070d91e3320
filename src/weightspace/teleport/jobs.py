"""How the teleportation experiments are cut into jobs and what each job reads of the
config. Pure Python, read when the workflow is parsed (no torch).

Training runs (Figs 6, 8, 9, 10) are identified by (data set, model, initialiser, arm,
optimiser, seed index); a run that two figures need (the standard and teleported arms of
Figs 6 and 10) is trained once. Runs of one (data set, model, initialiser, arm) are cut
into jobs of ``teleport.training.runs_per_job`` runs: many per job at quick scale, where
start-up would dominate, one per GPU job at paper scale.
"""

from __future__ import annotations

from collections.abc import Mapping

TRAINING_FIGURES = (
    "fig6_convergence",
    "fig8_activations",
    "fig9_initializers",
    "fig10_pseudo",
)
# keys of teleport.training every training job reads
TRAINING_PROTOCOL = (
    "epochs",
    "batch_size",
    "validation",
    "paper_eval_on_test",
    "cob_range",
    "sampling_type",
    "plateau_factor",
    "plateau_patience",
    "top5",
    "num_workers",
    "checkpoint",
)


def model_id(spec: Mapping) -> str:
    """``mlp_5x128-elu`` for an MLP with an activation, else the model's name."""
    activation = spec.get("activation")
    return spec["model"] if activation is None else f"{spec['model']}-{activation}"


def _by_name(items, name: str, what: str) -> dict:
    for item in items:
        if item["name"] == name:
            return item
    raise KeyError(f"no {what} named {name!r}")


def training_groups(config: Mapping) -> dict[tuple[str, str, str, str], list]:
    """(data set, model id, initialiser, arm) -> its runs [(optimiser, seed index)], in
    config order, for every run some training figure needs."""
    teleport = config["teleport"]
    training = teleport["training"]
    groups: dict[tuple[str, str, str, str], list] = {}
    for figure in TRAINING_FIGURES:
        block = teleport[figure]
        for dataset in training["datasets"]:
            for spec in block["models"]:
                for init in block["initializers"]:
                    for arm in block["arms"]:
                        key = (dataset, model_id(spec), init, arm)
                        groups.setdefault(key, [])
    runs = [
        (o["name"], s) for o in training["optimizers"] for s in range(training["runs"])
    ]
    return {key: list(runs) for key in groups}


def training_jobs(config: Mapping) -> list[tuple[str, str, str, str, int]]:
    """(data set, model id, initialiser, arm, chunk) of every training job."""
    per_job = config["teleport"]["training"]["runs_per_job"]
    return [
        (*key, chunk)
        for key, runs in training_groups(config).items()
        for chunk in range(-(-len(runs) // per_job))
    ]


def figure_training_jobs(config: Mapping, figure: str) -> list[tuple]:
    """The training jobs whose runs ``figure`` plots."""
    block = config["teleport"][figure]
    datasets = config["teleport"]["training"]["datasets"]
    wanted = {
        (dataset, model_id(spec), init, arm)
        for dataset in datasets
        for spec in block["models"]
        for init in block["initializers"]
        for arm in block["arms"]
    }
    return [job for job in training_jobs(config) if job[:4] in wanted]


def _model_spec(config: Mapping, model: str) -> dict:
    teleport = config["teleport"]
    for figure in TRAINING_FIGURES:
        for spec in teleport[figure]["models"]:
            if model_id(spec) == model:
                return dict(spec)
    raise KeyError(f"no training model with id {model!r}")


def training_job_config(
    config: Mapping, dataset: str, model: str, init: str, arm: str, chunk: int
) -> dict:
    """One training job: its runs (optimiser entries and seed indices), the model and
    initialiser entries and the training protocol."""
    training = config["teleport"]["training"]
    runs = training_groups(config)[(dataset, model, init, arm)]
    per_job = training["runs_per_job"]
    mine = runs[chunk * per_job : (chunk + 1) * per_job]
    return {
        "seed": config["seed"],
        "device": config["device"],
        "dataset": dataset,
        "data": _data_keys(config, dataset),
        "model": _model_spec(config, model),
        "initializer": _by_name(training["initializers"], init, "initialiser"),
        "arm": arm,
        "runs": [
            {"optimizer": _by_name(training["optimizers"], o, "optimiser"), "seed": s}
            for o, s in mine
        ],
        "protocol": {key: training[key] for key in TRAINING_PROTOCOL},
    }


def figure_job_config(config: Mapping, figure: str) -> dict:
    """What a training figure's plot reads: its block and how runs are grouped."""
    training = config["teleport"]["training"]
    return {
        "figure": figure,
        "block": config["teleport"][figure],
        "datasets": training["datasets"],
        "optimizers": training["optimizers"],
        "runs": training["runs"],
        "epochs": training["epochs"],
        "box_epochs": training["box_epochs"],
        "zero_fill_diverged": training["zero_fill_diverged"],
    }


def _data_keys(config: Mapping, dataset: str) -> dict:
    """The data keys a job on ``dataset`` reads (paper data sets: their root)."""
    if dataset in ("mnist_subset", "random"):
        return {}
    data = config["data"]
    return {"root": data["root"], "verify_checksums": data["verify_checksums"]}


def gradients_job_config(config: Mapping, model: str) -> dict:
    block = config["teleport"]["fig7_gradients"]
    spec = next(s for s in block["models"] if model_id(s) == model)
    return {
        "seed": config["seed"],
        "device": config["device"],
        "model": dict(spec),
        "data": _data_keys(config, block["dataset"]),
        **{k: v for k, v in block.items() if k != "models"},
    }


def flatness_train_job_config(config: Mapping, endpoint: str) -> dict:
    block = config["teleport"]["fig5_flatness"]
    keys = ("dataset", "model", "lr", "momentum", "weight_decay", "max_attempts")
    keys += ("augment",)
    return {
        "seed": config["seed"],
        "device": config["device"],
        "endpoint": endpoint,
        "batch_size": block["batch_sizes"][endpoint],
        "epochs": block["epochs"][endpoint],
        "data": _data_keys(config, block["dataset"]),
        **{k: block[k] for k in keys},
    }


def flatness_job_config(config: Mapping) -> dict:
    block = config["teleport"]["fig5_flatness"]
    return {
        "seed": config["seed"],
        "device": config["device"],
        "data": _data_keys(config, block["dataset"]),
        **block,
    }


def micro_job_config(config: Mapping) -> dict:
    block = config["teleport"]["fig4_micro"]
    datasets = [d for d in block["datasets"] if d != "random"]
    return {
        "seed": config["seed"],
        "device": config["device"],
        "data": _data_keys(config, datasets[0]) if datasets else {},
        **block,
    }
