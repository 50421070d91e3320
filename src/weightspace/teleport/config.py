"""Semantic checks of the ``teleport`` config, beyond what the schema can say.

``check(config)`` returns every problem at once, one message each naming the key and the
fix. It runs when the workflow is parsed, so it imports neither torch nor snakemake.
"""

from __future__ import annotations

from collections.abc import Mapping

from weightspace.teleport.jobs import TRAINING_FIGURES, model_id

# models the experiments can build (weightspace.models; a test keeps them in step)
MODELS = (
    "mlp",
    "mlp_5x128",
    "mlp_5x500",
    "small_vgg",
    "vgg11",
    "vgg11_bn",
    "vgg16",
    "vgg16_bn",
    "vgg_tiny",
    "vgg_tiny_bn",
    "resnet18",
    "resnet18_cifar",
    "resnet_tiny",
    "resnet8",
    "resnet20",
    "densenet121",
    "densenet_tiny",
    "resnet_tiny_imagenet_stem",
    "densenet_tiny_imagenet_stem",
)
# training samples of each data set before the validation hold-out
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000}


def check(config: Mapping) -> list[str]:
    teleport = config["teleport"]
    problems = []
    for where, spec in _model_entries(teleport):
        problems += _model_problems(where, spec)
    problems += _training_problems(config)
    problems += _range_problems(teleport)
    return problems


def _model_entries(teleport: Mapping):
    for figure in ("fig4_micro", "fig7_gradients", *TRAINING_FIGURES):
        for i, spec in enumerate(teleport[figure]["models"]):
            yield f"teleport.{figure}.models.{i}", spec
    for figure in ("fig5_flatness", "fig11_histograms"):
        yield f"teleport.{figure}.model", teleport[figure]["model"]


def _model_problems(where: str, spec: Mapping) -> list[str]:
    name = spec["model"]
    if name not in MODELS:
        return [f"{where}: unknown model {name!r}; use one of {', '.join(MODELS)}"]
    if spec.get("activation") is not None and not name.startswith("mlp"):
        return [
            f"{where}: {name} takes no activation option (only the MLPs do); remove "
            "`activation`"
        ]
    return []


def _train_size(config: Mapping, dataset: str) -> int:
    if dataset == "mnist_subset":
        return 5000 - config["data"]["mnist_subset"]["test_size"]
    return TRAIN_SIZES[dataset]


def _training_problems(config: Mapping) -> list[str]:
    teleport = config["teleport"]
    training = teleport["training"]
    problems = []
    names = {i["name"] for i in training["initializers"]}
    if len(names) != len(training["initializers"]):
        problems.append("teleport.training.initializers: names must be unique")
    optimizers = [o["name"] for o in training["optimizers"]]
    if len(set(optimizers)) != len(optimizers):
        problems.append("teleport.training.optimizers: names must be unique")
    for figure in TRAINING_FIGURES:
        for init in teleport[figure]["initializers"]:
            if init not in names:
                problems.append(
                    f"teleport.{figure}.initializers: {init!r} is not defined in "
                    f"teleport.training.initializers ({', '.join(sorted(names))})"
                )
        ids = [model_id(s) for s in teleport[figure]["models"]]
        if len(set(ids)) != len(ids):
            problems.append(f"teleport.{figure}.models: a model is listed twice")
    late = [e for e in training["box_epochs"] if e > training["epochs"]]
    if late:
        problems.append(
            f"teleport.training.box_epochs: {late} lie after the last epoch "
            f"({training['epochs']}); use epochs within 0..{training['epochs']}"
        )
    if training["sampling_type"] == "intra_landscape" and training["cob_range"] > 1:
        problems.append(
            "teleport.training.cob_range: intra_landscape needs a range <= 1 (larger "
            "ranges allow negative scalars); use inter_landscape"
        )
    for dataset in training["datasets"]:
        n = _train_size(config, dataset)
        if not training["paper_eval_on_test"] and training["validation"] < 1:
            problems.append(
                "teleport.training.validation: the scheduler reads validation "
                "accuracy; hold out at least one sample or set paper_eval_on_test"
            )
            break
        if training["validation"] + training["batch_size"] > n:
            problems.append(
                f"teleport.training.validation: holding out {training['validation']} "
                f"of {dataset}'s {n} training samples leaves less than one batch of "
                f"{training['batch_size']}"
            )
    return problems


def _grid_contains(grid: Mapping, value: float) -> bool:
    start, stop, count = grid["start"], grid["stop"], grid["count"]
    position = (value - start) / (stop - start) * (count - 1)
    return 0 <= position <= count - 1 and abs(position - round(position)) < 1e-9


def _range_problems(teleport: Mapping) -> list[str]:
    problems = []
    alphas = teleport["fig5_flatness"]["alphas"]
    if not (_grid_contains(alphas, 0.0) and _grid_contains(alphas, 1.0)):
        problems.append(
            "teleport.fig5_flatness.alphas: the grid must contain 0 and 1 (the "
            "endpoints A and B); choose start, stop and count so that it does"
        )
    ranges = teleport["fig7_gradients"]["cob_ranges"]
    if not 0 < ranges["start"] < ranges["stop"] <= 1:
        problems.append(
            "teleport.fig7_gradients.cob_ranges: intra_landscape ranges need "
            "0 < start < stop <= 1"
        )
    micro = teleport["fig4_micro"]
    if micro["datasets"] == ["random"]:
        problems.append(
            "teleport.fig4_micro.datasets: random data takes the shape of a real data "
            "set; list one (mnist_subset, cifar10 or cifar100) beside random"
        )
    return problems
