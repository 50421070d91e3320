"""VGG networks (torchvision layout) that also run on 28x28 and 32x32 images.

With the defaults (``pool_output=7``, classifier 4096-4096) the module tree, parameter names and
shapes equal torchvision's ``vgg*`` / ``vgg*_bn`` for any ``num_classes``, so pretrained
state dicts load with ``strict=True``. A 2x2 max-pool is skipped where the feature map is already
1 pixel high or wide (28x28 input reaches 1x1 after four pools), so every depth works on small
images; the adaptive average pool then replicates the 1x1 map to ``pool_output`` as torchvision does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from .layers import as_hw, check_positive_int

POOL = "M"  # a 2x2 max pool in a cfg list


def _stages(*convs: int) -> list[int | str]:
    """A cfg of five stages of 64, 128, 256, 512, 512 channels, each with ``convs[i]``
    3x3 convs and a max pool."""
    widths = (64, 128, 256, 512, 512)
    return [v for width, n in zip(widths, convs) for v in (*[width] * n, POOL)]


# torchvision's configurations A, B, D and E
VGG_CONFIGS: dict[int, list[int | str]] = {
    11: _stages(1, 1, 2, 2, 2),
    13: _stages(2, 2, 2, 2, 2),
    16: _stages(2, 2, 3, 3, 3),
    19: _stages(2, 2, 4, 4, 4),
}


def _resolve_cfg(depth_or_cfg) -> list[int | str]:
    if isinstance(depth_or_cfg, int) and not isinstance(depth_or_cfg, bool):
        if depth_or_cfg not in VGG_CONFIGS:
            raise ValueError(
                f"unknown VGG depth {depth_or_cfg}; use one of {sorted(VGG_CONFIGS)} or a custom cfg list "
                "such as [64, 'M', 128, 'M']"
            )
        return list(VGG_CONFIGS[depth_or_cfg])
    cfg = list(depth_or_cfg)
    if not any(v != "M" for v in cfg):
        raise ValueError(
            f"a VGG cfg needs at least one conv width, got {depth_or_cfg!r}"
        )
    for v in cfg:
        if v != "M" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(
                f"VGG cfg entries must be positive ints (conv widths) or 'M' (max-pool), got {v!r}"
            )
    return cfg


def vgg(
    depth_or_cfg: int | Sequence[int | str] = 16,
    in_channels: int = 3,
    image_size: int | Sequence[int] = 32,
    num_classes: int = 10,
    batch_norm: bool = False,
    width: float = 1.0,
    pool_output: int | Sequence[int] | None = 7,
    classifier_hidden: Sequence[int] = (4096, 4096),
    dropout: float = 0.5,
) -> nn.Sequential:
    """A VGG as ``Sequential(features, [avgpool], flatten, classifier)``.

    ``depth_or_cfg``: 11, 13, 16, 19 or a cfg list of conv widths and ``"M"`` (max-pool 2x2).
    ``width`` scales every conv width (small variants). ``pool_output``: AdaptiveAvgPool2d output
    size, or None to flatten the feature map directly (flatten size computed from image_size).
    ``classifier_hidden``: widths of the hidden Linear -> ReLU -> Dropout layers of the head.
    Initialisation as torchvision: conv kaiming-normal (fan_out) with zero bias, BN (1, 0),
    Linear N(0, 0.01) with zero bias.
    """
    cfg = _resolve_cfg(depth_or_cfg)
    check_positive_int(in_channels, "in_channels")
    check_positive_int(num_classes, "num_classes")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    height, width_px = as_hw(image_size)

    features: list[nn.Module] = []
    c_in = in_channels
    for v in cfg:
        if v == "M":
            if min(height, width_px) >= 2:
                features.append(nn.MaxPool2d(kernel_size=2, stride=2))
                height, width_px = height // 2, width_px // 2
            continue
        c_out = max(1, int(round(v * width)))
        # conv bias kept even before BN: torchvision's layout (and its parameter counts)
        features.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
        if batch_norm:
            features.append(nn.BatchNorm2d(c_out))
        features.append(nn.ReLU())
        c_in = c_out

    parts: OrderedDict[str, nn.Module] = OrderedDict(features=nn.Sequential(*features))
    if pool_output is not None:
        height, width_px = as_hw(pool_output)
        parts["avgpool"] = nn.AdaptiveAvgPool2d((height, width_px))
    parts["flatten"] = nn.Flatten()

    head: list[nn.Module] = []
    n_in = c_in * height * width_px
    for n_out in classifier_hidden:
        check_positive_int(n_out, "each classifier_hidden width")
        head += [nn.Linear(n_in, n_out), nn.ReLU(), nn.Dropout(p=dropout)]
        n_in = n_out
    head.append(nn.Linear(n_in, num_classes))
    parts["classifier"] = nn.Sequential(*head)
    model = nn.Sequential(parts)
    _init_vgg(model)
    return model


def _init_vgg(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
