"""How the teleportation experiments are cut into jobs and what each job reads of the
config. Pure Python, read when the workflow is parsed (no torch).

Training runs (Figs 6, 8, 9, 10) are identified by (data set, model, initialiser, arm,
optimiser, seed index); a run that two figures need (the standard and teleported arms of
Figs 6 and 10) is trained once. The runs of one cell (data set, model, initialiser),
every arm that some figure asks of it, arm by arm, are cut into jobs of
``teleport.training.runs_per_job`` runs: a whole cell per job at quick scale, where
start-up would dominate, one run per GPU job at paper scale. A job is named by its cell,
its chunk index within the cell and the arms its runs hold.
"""

from __future__ import annotations

from collections.abc import Mapping

from weightspace.pipeline.chunks import split_runs

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


def training_groups(config: Mapping) -> dict[tuple[str, str, str], list]:
    """(data set, model id, initialiser) -> its runs [(arm, optimiser, seed index)], arm
    by arm in the order the figures first ask for them, for every run some training
    figure needs."""
    teleport = config["teleport"]
    training = teleport["training"]
    arms: dict[tuple[str, str, str], list[str]] = {}
    for figure in TRAINING_FIGURES:
        block = teleport[figure]
        for dataset in training["datasets"]:
            for spec in block["models"]:
                for init in block["initializers"]:
                    cell = arms.setdefault((dataset, model_id(spec), init), [])
                    cell += [arm for arm in block["arms"] if arm not in cell]
    runs = [
        (o["name"], s) for o in training["optimizers"] for s in range(training["runs"])
    ]
    return {
        cell: [(arm, *run) for arm in cell_arms for run in runs]
        for cell, cell_arms in arms.items()
    }


def _chunks(config: Mapping, runs: list) -> list[list]:
    return split_runs(runs, config["teleport"]["training"]["runs_per_job"])


def chunk_arms(runs) -> str:
    """The arms a chunk of runs holds, in order, joined by '+' (its name's tail)."""
    return "+".join(dict.fromkeys(arm for arm, *_ in runs))


def training_jobs(config: Mapping) -> list[tuple[str, str, str, int, str]]:
    """(data set, model id, initialiser, chunk, arms) of every training job."""
    return [
        (*cell, chunk, chunk_arms(runs))
        for cell, cell_runs in training_groups(config).items()
        for chunk, runs in enumerate(_chunks(config, cell_runs))
    ]


def figure_training_jobs(config: Mapping, figure: str) -> list[tuple]:
    """The training jobs holding runs that ``figure`` plots."""
    block = config["teleport"][figure]
    datasets = config["teleport"]["training"]["datasets"]
    wanted = {
        (dataset, model_id(spec), init, arm)
        for dataset in datasets
        for spec in block["models"]
        for init in block["initializers"]
        for arm in block["arms"]
    }
    return [
        job
        for job in training_jobs(config)
        if any((*job[:3], arm) in wanted for arm in job[4].split("+"))
    ]


def _model_spec(config: Mapping, model: str) -> dict:
    teleport = config["teleport"]
    for figure in TRAINING_FIGURES:
        for spec in teleport[figure]["models"]:
            if model_id(spec) == model:
                return dict(spec)
    raise KeyError(f"no training model with id {model!r}")


def training_job_config(
    config: Mapping, dataset: str, model: str, init: str, chunk: int, arms: str
) -> dict:
    """One training job: its runs (arm, optimiser entry and seed index), the model and
    initialiser entries and the training protocol. ``arms`` is the job's name tail
    (``chunk_arms``); a name that does not match the chunk's runs is refused."""
    training = config["teleport"]["training"]
    cell = (dataset, model, init)
    groups = training_groups(config)
    if cell not in groups:
        raise ValueError(f"no training figure asks for the cell {cell}")
    chunks = _chunks(config, groups[cell])
    if not 0 <= chunk < len(chunks):
        raise ValueError(f"cell {cell} has chunks 0..{len(chunks) - 1}, not {chunk}")
    mine = chunks[chunk]
    if chunk_arms(mine) != arms:
        raise ValueError(
            f"chunk {chunk} of cell {cell} holds the arms {chunk_arms(mine)!r}, not "
            f"{arms!r}: the file name is from another config"
        )
    return {
        "seed": config["seed"],
        "device": config["device"],
        "dataset": dataset,
        "data": _data_keys(config, dataset),
        "model": _model_spec(config, model),
        "initializer": _by_name(training["initializers"], init, "initialiser"),
        "runs": [
            {
                "arm": arm,
                "optimizer": _by_name(training["optimizers"], o, "optimiser"),
                "seed": s,
            }
            for arm, o, s in mine
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


def gradients_jobs(config: Mapping) -> list[str]:
    """The Fig. 7 jobs, each named by its models' ids joined by '+': the architectures
    in config order, ``fig7_gradients.models_per_job`` per job (quick: all in one job;
    paper: one GPU job per architecture)."""
    block = config["teleport"]["fig7_gradients"]
    ids = [model_id(spec) for spec in block["models"]]
    per_job = block["models_per_job"]
    return ["+".join(ids[i : i + per_job]) for i in range(0, len(ids), per_job)]


def gradients_job_config(config: Mapping, models: str) -> dict:
    """One Fig. 7 job: its models (``models`` is its name from ``gradients_jobs``)."""
    if models not in gradients_jobs(config):
        raise ValueError(
            f"no Fig. 7 job holds the models {models!r}; the jobs are "
            f"{gradients_jobs(config)}"
        )
    block = config["teleport"]["fig7_gradients"]
    wanted = models.split("+")
    return {
        "seed": config["seed"],
        "device": config["device"],
        "models": [dict(s) for s in block["models"] if model_id(s) in wanted],
        "data": _data_keys(config, block["dataset"]),
        **{k: v for k, v in block.items() if k not in ("models", "models_per_job")},
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
