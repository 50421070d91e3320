"""Models by name: ``build_model("resnet18", in_channels=3, image_size=32, num_classes=10)``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

from torch import nn

from .cnn import small_cnn
from .densenet import densenet
from .mlp import mlp
from .resnet import resnet
from .vgg import vgg


def _vgg_entries() -> dict[str, tuple[Callable[..., nn.Module], dict]]:
    entries = {}
    for depth in (11, 13, 16, 19):
        entries[f"vgg{depth}"] = (vgg, {"depth_or_cfg": depth})
        entries[f"vgg{depth}_bn"] = (vgg, {"depth_or_cfg": depth, "batch_norm": True})
    return entries


# name -> (builder, default keyword arguments); callers' keyword arguments override the defaults
MODELS: dict[str, tuple[Callable[..., nn.Module], dict]] = {
    "mlp": (mlp, {"hidden": (128,)}),
    "mlp_5x128": (mlp, {"hidden": (128,) * 5}),
    "mlp_5x500": (mlp, {"hidden": (500,) * 5}),
    # structured-matrices quick scale: conv 32/64 "same", pools, adaptive pool 4x4, fc1 1024->256
    "small_cnn": (small_cnn, {}),
    # random-bases "CNN" (TensorFlow CNN tutorial): valid 3x3 convs 32/64/64, two pools, dense 64
    "tutorial_cnn": (
        small_cnn,
        {
            "channels": (32, 64, 64),
            "padding": "valid",
            "pool": (True, True, False),
            "adaptive_pool": None,
            "hidden": (64,),
        },
    ),
    # teleportation quick scale: 2 x [conv, ReLU, conv, ReLU, maxpool], 16/32 channels, Linear -> classes
    "small_vgg": (
        vgg,
        {
            "depth_or_cfg": [16, 16, "M", 32, 32, "M"],
            "pool_output": None,
            "classifier_hidden": (),
        },
    ),
    **_vgg_entries(),
    # reduced VGG-11 (1/8 width, small head, no dropout) for quick-scale statistics
    "vgg_tiny": (
        vgg,
        {
            "depth_or_cfg": 11,
            "width": 0.125,
            "pool_output": 1,
            "classifier_hidden": (64, 64),
            "dropout": 0.0,
        },
    ),
    "vgg_tiny_bn": (
        vgg,
        {
            "depth_or_cfg": 11,
            "batch_norm": True,
            "width": 0.125,
            "pool_output": 1,
            "classifier_hidden": (64, 64),
            "dropout": 0.0,
        },
    ),
    "resnet18": (resnet, {"stages": (2, 2, 2, 2)}),
    # the teleportation paper's CIFAR ResNet-18: 3x3 stride-1 stem, max-pool kept
    "resnet18_cifar": (resnet, {"stages": (2, 2, 2, 2), "stem": "small_maxpool"}),
    "resnet34": (resnet, {"stages": (3, 4, 6, 3)}),
    "resnet50": (resnet, {"stages": (3, 4, 6, 3), "block": "bottleneck"}),
    "resnet101": (resnet, {"stages": (3, 4, 23, 3), "block": "bottleneck"}),
    "resnet152": (resnet, {"stages": (3, 8, 36, 3), "block": "bottleneck"}),
    # CIFAR ResNet-8 with projection shortcuts in each stage's first block (78,330 parameters at 3x32x32)
    "resnet8": (
        resnet,
        {
            "stages": (1, 1, 1),
            "widths": (16, 32, 64),
            "stem": "small",
            "projection": "first",
        },
    ),
    "resnet20": (
        resnet,
        {"stages": (3, 3, 3), "widths": (16, 32, 64), "stem": "small"},
    ),
    # two stages of one basic block (16, 32), small stem, projection in each stage's first block
    "resnet_tiny": (
        resnet,
        {"stages": (1, 1), "widths": (16, 32), "stem": "small", "projection": "first"},
    ),
    # ImageNet stems (7x7 stride-2 conv and max-pool: 28x28 -> 7x7), as the teleportation
    # paper's gradient statistics use for ResNet-18 and DenseNet-121
    "resnet_tiny_imagenet_stem": (
        resnet,
        {
            "stages": (1, 1),
            "widths": (16, 32),
            "stem": "imagenet",
            "projection": "first",
        },
    ),
    "densenet_tiny_imagenet_stem": (
        densenet,
        {
            "growth_rate": 8,
            "block_config": (2, 2, 2),
            "num_init_features": 16,
            "stem": "imagenet",
        },
    ),
    "densenet121": (densenet, {"block_config": (6, 12, 24, 16)}),
    "densenet169": (densenet, {"block_config": (6, 12, 32, 32)}),
    "densenet201": (densenet, {"block_config": (6, 12, 48, 32)}),
    "densenet161": (
        densenet,
        {"growth_rate": 48, "block_config": (6, 12, 36, 24), "num_init_features": 96},
    ),
    "densenet_tiny": (
        densenet,
        {
            "growth_rate": 8,
            "block_config": (2, 2, 2),
            "num_init_features": 16,
            "stem": "small",
        },
    ),
}


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments (``in_channels``, ``image_size``, ``num_classes``,
    and any option of the underlying builder) override the registered defaults."""
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint}; known models: {', '.join(model_names())}"
        )
    builder, defaults = MODELS[name]
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"model {name!r} (builder {builder.__name__}) does not take {', '.join(unknown)}; "
            f"accepted options: {', '.join(accepted)}"
        )
    return builder(**{**defaults, **kwargs})


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameter entries (only those with requires_grad unless ``trainable_only`` is False);
    buffers such as BatchNorm running statistics are not parameters and are not counted."""
    return sum(
        p.numel() for p in model.parameters() if p.requires_grad or not trainable_only
    )
