"""The paper's models (credit_assignment.md §7, "Targets"), built from ordinary nn
modules and then converted to feedback layers.

- ``resnet_v1``: the TPU-reference post-activation ResNet: a 1×1 projection shortcut
  (+ BN) in the first block of every group (group 1 of ResNet-18/34 included), the
  stride on the bottleneck's 3×3 conv, γ = 0 in the last BN of each block, BN decay
  0.9 / eps 1e-5, LeCun-normal conv kernels, N(0, 0.01²) dense kernels, no conv
  biases.
- ``resnet_v2``: the pre-activation ResNet of the original's v2 file (BN + ReLU before
  each block, the projection reading the pre-activated input, a final BN + ReLU
  before the pool, BN decay 0.997, TF's default glorot-uniform classifier).
- ``quick_mlp`` (784-256-256-10, ReLU) and ``resnet_v1_tiny`` (the v1 design at
  28×28): the quick-scale models.

TF geometry (§12.5): a strided conv pads (k−1)//2 before and the rest after, then runs
unpadded; a stride-1 conv pads 'SAME'; the stem's max pool pads 'SAME' (at even sizes
one pixel after only, unlike PyTorch's symmetric padding). Strided convs therefore
see the padded tensor as their input, as in the original, which matters for the
alignment signals (noise inputs fill the padding ring too).
B is drawn with the same initializer as W, independently (§2). Every model is
size-agnostic (global average pool).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .layers import convert_to_feedback, glorot_uniform_, lecun_normal_

RESNET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
WIDTHS = (64, 128, 256, 512)
V1_BN_MOMENTUM = 0.1  # TF decay 0.9
V2_BN_MOMENTUM = 0.003  # TF decay 0.997
BN_EPS = 1e-5
MODEL_NAMES = (
    "mlp",
    "resnet_v1_tiny",
    *(f"resnet{d}" for d in RESNET_LAYOUTS),
    *(f"resnet{d}v2" for d in RESNET_LAYOUTS),
)
QUICK_MLP_FORWARD_PARAMETERS = 269_322
QUICK_MLP_BACKWARD_PARAMETERS = 268_800


class FixedPadding(nn.Module):
    """TF ``fixed_padding``: (k−1)//2 zeros before, the rest after, on H and W."""

    def __init__(self, kernel_size: int):
        super().__init__()
        total = kernel_size - 1
        self.pads = (total // 2, total - total // 2) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class SamePaddingMaxPool2d(nn.Module):
    """TF ``max_pooling2d(padding='SAME')``: output ceil(n / stride), the odd padding
    pixel after."""

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: W then H
            out = math.ceil(size / self.stride)
            total = max((out - 1) * self.stride + self.kernel_size - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads, value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)


def conv_tf(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    followed_by_relu: bool = False,
) -> nn.Module:
    """A bias-free conv with TF's ``conv2d_fixed_padding`` geometry. The conv is marked
    with ``alignment_activation`` (the original's ``alignment_relu``) when a ReLU
    follows it (through BN)."""
    if stride > 1:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, 0, bias=False)
        module = nn.Sequential(FixedPadding(kernel_size), conv)
    else:
        if kernel_size % 2 == 0:
            raise ValueError(f"stride-1 convs need an odd kernel, got {kernel_size}")
        conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=False
        )
        module = conv
    conv.alignment_activation = "relu" if followed_by_relu else None
    return module


def _bn(channels: int, momentum: float, zero_gamma: bool = False) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=BN_EPS, momentum=momentum)
    if zero_gamma:
        nn.init.zeros_(bn.weight)
    return bn


# --- ResNet v1 ----------------------------------------------------------------------


class BasicBlockV1(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, filters: int, stride: int, projection: bool):
        super().__init__()
        m = V1_BN_MOMENTUM
        self.shortcut = (
            nn.Sequential(conv_tf(in_channels, filters, 1, stride), _bn(filters, m))
            if projection
            else None
        )
        self.conv1 = conv_tf(in_channels, filters, 3, stride, followed_by_relu=True)
        self.bn1 = _bn(filters, m)
        self.conv2 = conv_tf(filters, filters, 3)
        self.bn2 = _bn(filters, m, zero_gamma=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + shortcut)


class BottleneckV1(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, filters: int, stride: int, projection: bool):
        super().__init__()
        m, out_channels = V1_BN_MOMENTUM, 4 * filters
        self.shortcut = (
            nn.Sequential(
                conv_tf(in_channels, out_channels, 1, stride), _bn(out_channels, m)
            )
            if projection
            else None
        )
        self.conv1 = conv_tf(in_channels, filters, 1, followed_by_relu=True)
        self.bn1 = _bn(filters, m)
        self.conv2 = conv_tf(filters, filters, 3, stride, followed_by_relu=True)
        self.bn2 = _bn(filters, m)
        self.conv3 = conv_tf(filters, out_channels, 1)
        self.bn3 = _bn(out_channels, m, zero_gamma=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + shortcut)


class BasicBlockV2(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, filters: int, stride: int, projection: bool):
        super().__init__()
        m = V2_BN_MOMENTUM
        self.bn0 = _bn(in_channels, m)
        self.shortcut = conv_tf(in_channels, filters, 1, stride) if projection else None
        self.conv1 = conv_tf(in_channels, filters, 3, stride, followed_by_relu=True)
        self.bn1 = _bn(filters, m)
        self.conv2 = conv_tf(filters, filters, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn0(x))
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = F.relu(self.bn1(self.conv1(pre)))
        return self.conv2(out) + shortcut


class BottleneckV2(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, filters: int, stride: int, projection: bool):
        super().__init__()
        m, out_channels = V2_BN_MOMENTUM, 4 * filters
        self.bn0 = _bn(in_channels, m)
        self.shortcut = (
            conv_tf(in_channels, out_channels, 1, stride) if projection else None
        )
        self.conv1 = conv_tf(in_channels, filters, 1, followed_by_relu=True)
        self.bn1 = _bn(filters, m)
        self.conv2 = conv_tf(filters, filters, 3, stride, followed_by_relu=True)
        self.bn2 = _bn(filters, m)
        self.conv3 = conv_tf(filters, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn0(x))
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = F.relu(self.bn1(self.conv1(pre)))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.conv3(out) + shortcut


_BLOCKS = {
    ("v1", "basic"): BasicBlockV1,
    ("v1", "bottleneck"): BottleneckV1,
    ("v2", "basic"): BasicBlockV2,
    ("v2", "bottleneck"): BottleneckV2,
}


class ResNet(nn.Module):
    """Stem, groups of blocks (projection and stride in each group's first block),
    [final BN + ReLU for v2], global average pool, dense classifier."""

    def __init__(
        self,
        version: str,
        block: str,
        blocks_per_group,
        widths,
        num_classes: int,
        in_channels: int,
        stem: str,
        stem_width: int,
    ):
        super().__init__()
        block_class = _BLOCKS[(version, block)]
        self.version = version
        momentum = V1_BN_MOMENTUM if version == "v1" else V2_BN_MOMENTUM
        if stem == "imagenet":
            stem_conv = conv_tf(in_channels, stem_width, 7, 2, followed_by_relu=True)
        else:
            stem_conv = conv_tf(in_channels, stem_width, 3, 1, followed_by_relu=True)
        stem_layers: OrderedDict[str, nn.Module] = OrderedDict(conv=stem_conv)
        if version == "v1":  # v2 normalises in the first block instead
            stem_layers["bn"] = _bn(stem_width, momentum)
            stem_layers["relu"] = nn.ReLU()
        if stem == "imagenet":
            stem_layers["pool"] = SamePaddingMaxPool2d(3, 2)
        self.stem = nn.Sequential(stem_layers)
        channels = stem_width
        groups = []
        for index, (count, width) in enumerate(zip(blocks_per_group, widths)):
            stride = 1 if index == 0 else 2
            group = [block_class(channels, width, stride, projection=True)]
            channels = width * block_class.expansion
            group += [
                block_class(channels, width, 1, projection=False)
                for _ in range(count - 1)
            ]
            groups.append(nn.Sequential(*group))
        self.groups = nn.Sequential(*groups)
        self.final = (
            nn.Sequential(_bn(channels, momentum), nn.ReLU())
            if version == "v2"
            else nn.Identity()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final(self.groups(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@torch.no_grad()
def _init_forward(model: nn.Module, dense_init, generator) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            lecun_normal_(module.weight, generator)
        elif isinstance(module, nn.Linear):
            dense_init(module.weight, generator)
            nn.init.zeros_(module.bias)


def _dense_normal(weight, generator):
    return nn.init.normal_(weight, 0.0, 0.01, generator=generator)


def _v2_init(layer: nn.Module, weight: torch.Tensor, generator=None):
    if isinstance(layer, nn.Conv2d):
        return lecun_normal_(weight, generator)
    return glorot_uniform_(weight, generator)


def _build_resnet(
    version,
    block,
    blocks,
    widths,
    num_classes,
    in_channels,
    stem,
    stem_width,
    feedback,
    generator,
) -> nn.Module:
    model = ResNet(
        version, block, blocks, widths, num_classes, in_channels, stem, stem_width
    )
    if version == "v1":
        _init_forward(model, _dense_normal, generator)
        backward_init = "paper"
    else:
        _init_forward(model, glorot_uniform_, generator)

        def backward_init(layer, weight):
            _v2_init(layer, weight, generator)

    if not feedback:
        return model
    return convert_to_feedback(
        model, backward_init=backward_init, generator=generator, inplace=True
    )


def _layout(depth: int) -> tuple[str, tuple[int, ...]]:
    if depth not in RESNET_LAYOUTS:
        raise ValueError(
            f"no ResNet of depth {depth}; choose one of {sorted(RESNET_LAYOUTS)}"
        )
    return RESNET_LAYOUTS[depth]


def resnet_v1(
    depth: int = 18,
    num_classes: int = 1000,
    in_channels: int = 3,
    feedback: bool = True,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """The ImageNet ResNet v1 of depth 18/34/50/101/152/200 (7×7/2 stem, 3×3/2 pool)."""
    block, blocks = _layout(depth)
    return _build_resnet(
        "v1",
        block,
        blocks,
        WIDTHS,
        num_classes,
        in_channels,
        "imagenet",
        64,
        feedback,
        generator,
    )


def resnet_v2(
    depth: int = 50,
    num_classes: int = 1000,
    in_channels: int = 3,
    feedback: bool = True,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """The pre-activation ResNet v2 (the paper uses 50/101/152 at 299×299)."""
    block, blocks = _layout(depth)
    return _build_resnet(
        "v2",
        block,
        blocks,
        WIDTHS,
        num_classes,
        in_channels,
        "imagenet",
        64,
        feedback,
        generator,
    )


def resnet_v1_tiny(
    num_classes: int = 10,
    in_channels: int = 1,
    feedback: bool = True,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """The quick ResNet-v1-tiny: 3×3 stem conv 16 + BN + ReLU, no max pool, two groups
    of one basic block (16 and 32 channels, projection in each), pool, dense."""
    return _build_resnet(
        "v1",
        "basic",
        (1, 1),
        (16, 32),
        num_classes,
        in_channels,
        "small",
        16,
        feedback,
        generator,
    )


def quick_mlp(
    in_features: int = 784,
    hidden: tuple[int, ...] = (256, 256),
    num_classes: int = 10,
    feedback: bool = True,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """The quick MLP 784-256-256-10 with ReLU. W and B are LeCun-normal (TF's
    ``variance_scaling_initializer``; the spec names no initializer for ``basic.fc``),
    biases zero."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = in_features
    for index, out in enumerate(hidden, start=1):
        linear = nn.Linear(width, out)
        linear.alignment_activation = "relu"
        layers[f"fc{index}"] = linear
        layers[f"relu{index}"] = nn.ReLU()
        width = out
    layers[f"fc{len(hidden) + 1}"] = nn.Linear(width, num_classes)
    model = nn.Sequential(layers)
    _init_forward(model, lecun_normal_, generator)
    if (in_features, tuple(hidden), num_classes) == (784, (256, 256), 10):
        count = sum(p.numel() for p in model.parameters())
        assert count == QUICK_MLP_FORWARD_PARAMETERS, count
    if not feedback:
        return model
    model = convert_to_feedback(
        model,
        backward_init=lambda layer, weight: lecun_normal_(weight, generator),
        inplace=True,
    )
    if (in_features, tuple(hidden), num_classes) == (784, (256, 256), 10):
        assert count_backward_parameters(model) == QUICK_MLP_BACKWARD_PARAMETERS
    return model


def count_forward_parameters(model: nn.Module) -> int:
    """Every parameter except the backward kernels."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if not name.endswith("backward_weight")
    )


def count_backward_parameters(model: nn.Module) -> int:
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if name.endswith("backward_weight")
    )


def build_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    feedback: bool = True,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A model by name: ``mlp``, ``resnet_v1_tiny``, ``resnet<depth>`` (v1) or
    ``resnet<depth>v2``. Defaults: 10 classes and 1 channel for the quick models,
    1000 classes and 3 channels for the ResNets."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
    quick = name in ("mlp", "resnet_v1_tiny")
    classes = num_classes if num_classes is not None else (10 if quick else 1000)
    channels = in_channels if in_channels is not None else (1 if quick else 3)
    if name == "mlp":
        return quick_mlp(
            channels * 28 * 28,
            num_classes=classes,
            feedback=feedback,
            generator=generator,
        )
    if name == "resnet_v1_tiny":
        return resnet_v1_tiny(classes, channels, feedback, generator)
    version = "v2" if name.endswith("v2") else "v1"
    depth = int(name.removeprefix("resnet").removesuffix("v2"))
    builder = resnet_v2 if version == "v2" else resnet_v1
    return builder(depth, classes, channels, feedback, generator)
