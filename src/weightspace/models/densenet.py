"""DenseNet-BC (torchvision layout) with a small-image stem option.

Parameter names and shapes follow torchvision (``features.conv0``, ``features.denseblock1.denselayer1.norm1``,
..., ``features.norm5``, ``classifier``), so torchvision state dicts load strictly with the ImageNet
stem. Every concatenation is a ``Concat`` module whose inputs are listed in computation order, every
ReLU is its own module, and the final ReLU / pool / flatten are modules rather than functional calls.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .layers import Concat, as_hw, check_positive_int


class DenseLayer(nn.Module):
    """BN -> ReLU -> 1x1 conv (bn_size * growth) -> BN -> ReLU -> 3x3 conv (growth) on the concatenated inputs."""

    def __init__(
        self, in_features: int, growth_rate: int, bn_size: int, drop_rate: float
    ):
        super().__init__()
        self.concat = Concat(dim=1)
        self.norm1 = nn.BatchNorm2d(in_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(
            bn_size * growth_rate, growth_rate, 3, padding=1, bias=False
        )
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else None

    def forward(self, previous: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(self.concat(previous))))
        x = self.conv2(self.relu2(self.norm2(x)))
        return x if self.dropout is None else self.dropout(x)


class DenseBlock(nn.Module):
    def __init__(
        self,
        n_layers: int,
        in_features: int,
        growth_rate: int,
        bn_size: int,
        drop_rate: float,
    ):
        super().__init__()
        self.n_layers = n_layers
        for index in range(n_layers):
            layer = DenseLayer(
                in_features + index * growth_rate, growth_rate, bn_size, drop_rate
            )
            self.add_module(f"denselayer{index + 1}", layer)
        self.concat = Concat(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for index in range(self.n_layers):
            features.append(getattr(self, f"denselayer{index + 1}")(features))
        return self.concat(features)


class Transition(nn.Sequential):
    """BN -> ReLU -> 1x1 conv -> [2x2 average pool]."""

    def __init__(self, in_features: int, out_features: int, pool: bool = True):
        layers = OrderedDict(
            norm=nn.BatchNorm2d(in_features),
            relu=nn.ReLU(),
            conv=nn.Conv2d(in_features, out_features, 1, bias=False),
        )
        if pool:
            layers["pool"] = nn.AvgPool2d(2, stride=2)
        super().__init__(layers)


def densenet(
    in_channels: int = 3,
    image_size: int | Sequence[int] = 32,
    num_classes: int = 10,
    growth_rate: int = 32,
    block_config: Sequence[int] = (6, 12, 24, 16),
    num_init_features: int = 64,
    bn_size: int = 4,
    compression: float = 0.5,
    drop_rate: float = 0.0,
    stem: str = "imagenet",
) -> nn.Sequential:
    """A DenseNet-BC as ``Sequential(features, relu, avgpool, flatten, classifier)``.

    Defaults are DenseNet-121. ``stem``: ``"imagenet"`` (7x7 stride-2 conv, BN, ReLU, 3x3 stride-2
    max-pool) or ``"small"`` (3x3 stride-1 conv, BN, ReLU). Transitions keep
    ``floor(compression * channels)`` channels and halve the map; a transition's pool is left out
    where the map is already 1 pixel high or wide (DenseNet-121 at 28x28 reaches 1x1 before its last
    transition), so the parameters do not depend on the image size and every depth runs on 28x28.
    Initialisation as torchvision: conv kaiming-normal (fan_in), BN (1, 0), Linear bias 0.
    """
    if stem not in ("imagenet", "small"):
        raise ValueError(
            f"unknown DenseNet stem {stem!r}; choose 'imagenet' or 'small'"
        )
    check_positive_int(in_channels, "in_channels")
    check_positive_int(num_classes, "num_classes")
    check_positive_int(growth_rate, "growth_rate")
    check_positive_int(num_init_features, "num_init_features")
    check_positive_int(bn_size, "bn_size")
    block_config = [
        check_positive_int(n, "each entry of block_config") for n in block_config
    ]
    if not block_config:
        raise ValueError("block_config must list at least one dense block")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression must be in (0, 1], got {compression!r}")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    height, width = as_hw(image_size)

    features: OrderedDict[str, nn.Module] = OrderedDict()
    if stem == "imagenet":
        features["conv0"] = nn.Conv2d(
            in_channels, num_init_features, 7, stride=2, padding=3, bias=False
        )
        features["norm0"] = nn.BatchNorm2d(num_init_features)
        features["relu0"] = nn.ReLU()
        features["pool0"] = nn.MaxPool2d(3, stride=2, padding=1)
        for _ in range(2):  # conv and pool: ceil-halving with these paddings
            height, width = (height + 1) // 2, (width + 1) // 2
    else:
        features["conv0"] = nn.Conv2d(
            in_channels, num_init_features, 3, padding=1, bias=False
        )
        features["norm0"] = nn.BatchNorm2d(num_init_features)
        features["relu0"] = nn.ReLU()

    n_features = num_init_features
    for index, n_layers in enumerate(block_config, start=1):
        features[f"denseblock{index}"] = DenseBlock(
            n_layers, n_features, growth_rate, bn_size, drop_rate
        )
        n_features += n_layers * growth_rate
        if index != len(block_config):
            out_features = max(1, int(n_features * compression))
            pooled = min(height, width) >= 2
            features[f"transition{index}"] = Transition(
                n_features, out_features, pool=pooled
            )
            n_features = out_features
            if pooled:
                height, width = height // 2, width // 2
    features["norm5"] = nn.BatchNorm2d(n_features)

    model = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(features),
            relu=nn.ReLU(),
            avgpool=nn.AdaptiveAvgPool2d((1, 1)),
            flatten=nn.Flatten(),
            classifier=nn.Linear(n_features, num_classes),
        )
    )
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
    return model
