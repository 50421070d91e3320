"""Configurable small convolutional networks for 28x28 / 32x32 images.

Two configurations used by the papers:
- ``small_cnn()`` with its defaults is the 283,786-parameter SmallCNN of the structured-matrices
  quick scale (conv 32 -> pool -> conv 64 -> pool -> adaptive avg pool 4x4 -> fc1 1024->256 -> fc2).
- ``small_cnn(channels=(32, 64, 64), padding=0, pool=(True, True, False), adaptive_pool=None,
  hidden=(64,))`` is the TensorFlow CNN-tutorial network of the random-bases paper
  (93,322 parameters at 1x28x28, 122,570 at 3x32x32).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from .layers import as_hw, check_positive_int, make_activation


def _pool_flags(pool, n_convs: int) -> list[bool]:
    if pool in ("every", True):
        return [True] * n_convs
    if pool in ("none", False, None):
        return [False] * n_convs
    flags = [bool(p) for p in pool]
    if len(flags) != n_convs:
        raise ValueError(
            f"pool has {len(flags)} entries but there are {n_convs} conv layers; give one flag per conv"
        )
    return flags


def small_cnn(
    in_channels: int = 1,
    image_size: int | Sequence[int] = 28,
    num_classes: int = 10,
    channels: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    padding: int | str = "same",
    pool: str | bool | Sequence[bool] = "every",
    adaptive_pool: int | Sequence[int] | None = 4,
    hidden: Sequence[int] = (256,),
    activation: str = "relu",
    batch_norm: bool = False,
) -> nn.Sequential:
    """Conv blocks (conv -> [BN] -> act -> [maxpool 2]) -> [adaptive avg pool] -> Flatten -> MLP head.

    ``padding``: an int, ``"same"`` (kernel_size // 2) or ``"valid"`` (0). ``pool``: ``"every"``,
    ``"none"`` or one flag per conv. ``adaptive_pool``: output size of an AdaptiveAvgPool2d before
    flattening, or None to flatten the feature map directly (its size is computed from image_size).
    Layer names: ``conv<i>, [bn<i>], act<i>, [pool<i>], [avgpool], flatten, fc<j>, fc_act<j>, ...``;
    the last Linear is ``fc<len(hidden)+1>``.
    """
    check_positive_int(in_channels, "in_channels")
    check_positive_int(num_classes, "num_classes")
    check_positive_int(kernel_size, "kernel_size")
    channels = [check_positive_int(c, "each conv channel count") for c in channels]
    hidden = [check_positive_int(h, "each hidden width") for h in hidden]
    if padding == "same":
        pad = kernel_size // 2
    elif padding == "valid":
        pad = 0
    elif isinstance(padding, int) and padding >= 0:
        pad = padding
    else:
        raise ValueError(
            f"padding must be 'same', 'valid' or a non-negative int, got {padding!r}"
        )
    pool_flags = _pool_flags(pool, len(channels))
    make_activation(activation)

    height, width = as_hw(image_size)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c_in = in_channels
    for index, (c_out, pooled) in enumerate(zip(channels, pool_flags), start=1):
        layers[f"conv{index}"] = nn.Conv2d(
            c_in, c_out, kernel_size, padding=pad, bias=not batch_norm
        )
        if batch_norm:
            layers[f"bn{index}"] = nn.BatchNorm2d(c_out)
        layers[f"act{index}"] = make_activation(activation)
        height, width = (
            height + 2 * pad - kernel_size + 1,
            width + 2 * pad - kernel_size + 1,
        )
        if pooled:
            layers[f"pool{index}"] = nn.MaxPool2d(2)
            height, width = height // 2, width // 2
        if min(height, width) < 1:
            raise ValueError(
                f"image_size {image_size!r} is too small for {len(channels)} conv layers with padding {pad} "
                f"and pooling {pool_flags}: the feature map vanishes after conv{index}; use a larger image, "
                "'same' padding or fewer pools"
            )
        c_in = c_out

    if adaptive_pool is not None:
        pool_h, pool_w = as_hw(adaptive_pool)
        layers["avgpool"] = nn.AdaptiveAvgPool2d((pool_h, pool_w))
        height, width = pool_h, pool_w
    layers["flatten"] = nn.Flatten()
    features = c_in * height * width
    for index, width_out in enumerate(hidden, start=1):
        layers[f"fc{index}"] = nn.Linear(features, width_out)
        layers[f"fc_act{index}"] = make_activation(activation)
        features = width_out
    layers[f"fc{len(hidden) + 1}"] = nn.Linear(features, num_classes)
    return nn.Sequential(layers)
