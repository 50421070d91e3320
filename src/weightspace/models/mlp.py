"""Fully connected networks: Flatten -> (Linear -> [BatchNorm1d] -> activation) x n -> Linear."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from .layers import as_hw, check_positive_int, make_activation


def mlp(
    in_channels: int = 1,
    image_size: int | Sequence[int] = 28,
    num_classes: int = 10,
    hidden: Sequence[int] = (128,),
    activation: str = "relu",
    bias: bool = True,
    batch_norm: bool = False,
    in_features: int | None = None,
) -> nn.Sequential:
    """A multilayer perceptron on flattened inputs.

    The input size is ``in_features`` when given, else ``in_channels * height * width``.
    Layers are named ``flatten, fc1, [bn1], act1, fc2, ..., fc<n+1>``; every activation is its own
    module so that per-layer transformations can address each one.
    PyTorch's default Linear initialisation (U(+-1/sqrt(fan_in))) is kept.
    """
    if in_features is None:
        height, width = as_hw(image_size)
        in_features = check_positive_int(in_channels, "in_channels") * height * width
    check_positive_int(in_features, "in_features")
    check_positive_int(num_classes, "num_classes")
    hidden = [check_positive_int(h, "each hidden width") for h in hidden]
    make_activation(activation)  # validate the name before building anything

    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width_in = in_features
    for index, width_out in enumerate(hidden, start=1):
        layers[f"fc{index}"] = nn.Linear(width_in, width_out, bias=bias)
        if batch_norm:
            layers[f"bn{index}"] = nn.BatchNorm1d(width_out)
        layers[f"act{index}"] = make_activation(activation)
        width_in = width_out
    layers[f"fc{len(hidden) + 1}"] = nn.Linear(width_in, num_classes, bias=bias)
    return nn.Sequential(layers)
