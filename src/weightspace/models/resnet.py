"""ResNets with configurable stages, widths, blocks and stem.

Parameter names and shapes follow torchvision (``conv1, bn1, layer<k>.<i>.conv1, ..., downsample.0/1,
fc``): with ``stem="imagenet"`` and the standard stages, torchvision state dicts load strictly.
Structure kept explicit for code that walks the network: every ReLU is its own module, the
residual sum is an ``Add`` module, and a block computes its shortcut branch before its main branch
(the shortcut is ``Add``'s first argument).

Variants used by the papers:
- ``resnet(stem="small_maxpool")``: the teleportation paper's CIFAR ResNet-18 (3x3 stem, max-pool kept).
- ``resnet(stages=(1, 1, 1), widths=(16, 32, 64), stem="small", projection="first")``: a CIFAR
  ResNet-8 with a projection shortcut in each stage's first block (78,330 parameters at 3x32x32).
- ``projection="first"`` also gives the TPU-reference ResNet v1 block layout of the credit-assignment paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import Add, as_hw, check_positive_int

STEMS = ("imagenet", "small", "small_maxpool")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, planes, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.add = Add()
        self.relu2 = nn.ReLU()

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(self.add(shortcut, out))


class Bottleneck(nn.Module):
    """torchvision's bottleneck (stride on the 3x3 conv), output width ``4 * planes``."""

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample
        self.add = Add()
        self.relu3 = nn.ReLU()

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(self.add(shortcut, out))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        stages: Sequence[int],
        widths: Sequence[int],
        in_channels: int,
        num_classes: int,
        stem: str,
        stem_width: int,
        projection: str,
    ):
        super().__init__()
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(
                in_channels, stem_width, 7, stride=2, padding=3, bias=False
            )
        else:
            self.conv1 = nn.Conv2d(
                in_channels, stem_width, 3, stride=1, padding=1, bias=False
            )
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU()
        # absent (None) rather than Identity so layer walkers meet only real operations
        self.maxpool = (
            nn.MaxPool2d(3, stride=2, padding=1)
            if stem in ("imagenet", "small_maxpool")
            else None
        )

        in_planes = stem_width
        self.stage_names: list[str] = []
        for index, (n_blocks, planes) in enumerate(zip(stages, widths)):
            stride = 1 if index == 0 else 2
            blocks = []
            for b in range(n_blocks):
                block_stride = stride if b == 0 else 1
                out_planes = planes * block.expansion
                needs_projection = block_stride != 1 or in_planes != out_planes
                downsample = None
                if needs_projection or (projection == "first" and b == 0):
                    downsample = nn.Sequential(
                        nn.Conv2d(
                            in_planes, out_planes, 1, stride=block_stride, bias=False
                        ),
                        nn.BatchNorm2d(out_planes),
                    )
                blocks.append(block(in_planes, planes, block_stride, downsample))
                in_planes = out_planes
            name = f"layer{index + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(self.flatten(self.avgpool(x)))


def resnet(
    in_channels: int = 3,
    image_size: int | Sequence[int] = 32,
    num_classes: int = 10,
    stages: Sequence[int] = (2, 2, 2, 2),
    widths: Sequence[int] = (64, 128, 256, 512),
    block: str = "basic",
    stem: str = "imagenet",
    stem_width: int | None = None,
    projection: str = "needed",
    zero_init_residual: bool = False,
) -> ResNet:
    """A ResNet: stem -> stages of residual blocks (stride 1 in the first stage, 2 after) -> avg pool -> fc.

    ``stages``: blocks per stage; ``widths``: planes per stage (bottleneck outputs 4x planes).
    ``stem``: ``"imagenet"`` (7x7 stride-2 conv + 3x3 stride-2 max-pool), ``"small"`` (3x3
    stride-1 conv, no pool) or ``"small_maxpool"`` (3x3 conv + max-pool). ``stem_width`` defaults to
    ``widths[0]``. ``projection``: ``"needed"`` (1x1 conv + BN shortcut only where the shape changes,
    torchvision) or ``"first"`` (in every stage's first block). ``image_size`` is validated only:
    the global average pool makes the network size-agnostic.
    Initialisation as torchvision: conv kaiming-normal (fan_out), BN (1, 0), Linear PyTorch default;
    ``zero_init_residual`` zeroes the last BN scale of each residual branch.
    """
    if block not in BLOCKS:
        raise ValueError(
            f"unknown ResNet block {block!r}; choose one of: {', '.join(BLOCKS)}"
        )
    if stem not in STEMS:
        raise ValueError(
            f"unknown ResNet stem {stem!r}; choose one of: {', '.join(STEMS)}"
        )
    if projection not in ("needed", "first"):
        raise ValueError(f"projection must be 'needed' or 'first', got {projection!r}")
    stages = [check_positive_int(n, "each entry of stages") for n in stages]
    widths = [check_positive_int(w, "each entry of widths") for w in widths]
    if not stages or len(stages) != len(widths):
        raise ValueError(
            f"stages {stages} and widths {widths} must be non-empty and of equal length"
        )
    check_positive_int(in_channels, "in_channels")
    check_positive_int(num_classes, "num_classes")
    as_hw(image_size)
    stem_width = (
        widths[0]
        if stem_width is None
        else check_positive_int(stem_width, "stem_width")
    )

    model = ResNet(
        BLOCKS[block],
        stages,
        widths,
        in_channels,
        num_classes,
        stem,
        stem_width,
        projection,
    )
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if zero_init_residual:
        for module in model.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                nn.init.zeros_(module.last_bn.weight)
    return model
