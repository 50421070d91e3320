"""The networks of the teleportation experiments, named as the config names them.

A model entry is ``{"model": <name in weightspace.models>, "activation": <name>}``; the
activation is an option of the MLPs only. Its id (``mlp_5x128-elu``) names its results.
Initialisers (teleport.md §9) re-initialise every Linear and Conv layer; BatchNorm keeps
(1, 0). The paper's MLPs need gain 1.0 for Xavier (its README), hence ``mlp_gain``.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from weightspace.models import build_model, initialize_weights
from weightspace.teleport.jobs import model_id

# input shape (C, H, W) and classes of each data set the experiments read
DATA_SHAPES = {
    "mnist_subset": ((1, 28, 28), 10),
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}

__all__ = ["DATA_SHAPES", "build_network", "model_id"]


def _is_mlp(name: str) -> bool:
    return name == "mlp" or name.startswith("mlp_")


def build_network(
    spec: Mapping,
    input_shape: tuple[int, int, int],
    num_classes: int,
    initializer: Mapping | None = None,
) -> nn.Module:
    """The network of a model entry, initialised by ``initializer`` (``{"scheme": ...,
    "gain": ..., "mlp_gain": ...}``; None or scheme ``default`` keeps the builder's)."""
    options = {}
    if spec.get("activation") is not None:
        if not _is_mlp(spec["model"]):
            raise ValueError(
                f"model {model_id(spec)}: only MLPs take an activation option"
            )
        options["activation"] = spec["activation"]
    channels, height, width = input_shape
    model = build_model(
        spec["model"],
        in_channels=channels,
        image_size=(height, width),
        num_classes=num_classes,
        **options,
    )
    if initializer is not None and initializer["scheme"] != "default":
        gain = initializer.get("gain", 1.0)
        if _is_mlp(spec["model"]) and initializer.get("mlp_gain") is not None:
            gain = initializer["mlp_gain"]
        initialize_weights(model, initializer["scheme"], gain)
    return model
