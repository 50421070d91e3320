"""Weight initialisation schemes applied to every conv and linear layer of a model."""

from __future__ import annotations

import math

import torch
from torch import nn

_WEIGHTED = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)

# TF's truncated normal (cut at 2 std) has std 0.87962566 of the untruncated one; TF divides by it.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def _lecun_normal_(weight: torch.Tensor, gain: float) -> None:
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    std = gain * math.sqrt(1.0 / fan_in) / _TRUNCATED_NORMAL_STD
    nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


_SCHEMES = {
    "normal": lambda w, gain: nn.init.normal_(w, 0.0, gain),
    "xavier_normal": lambda w, gain: nn.init.xavier_normal_(w, gain=gain),
    "xavier_uniform": lambda w, gain: nn.init.xavier_uniform_(w, gain=gain),
    "kaiming_normal": lambda w, gain: nn.init.kaiming_normal_(
        w, mode="fan_in", nonlinearity="relu"
    ),
    "kaiming_uniform": lambda w, gain: nn.init.kaiming_uniform_(
        w, mode="fan_in", nonlinearity="relu"
    ),
    "orthogonal": lambda w, gain: nn.init.orthogonal_(w, gain=gain),
    "lecun_normal": _lecun_normal_,
}
INIT_SCHEMES = ("default", *_SCHEMES)


@torch.no_grad()
def initialize_weights(model: nn.Module, scheme: str, gain: float = 1.0) -> nn.Module:
    """Re-initialise the weights of all Linear / Conv / ConvTranspose layers in place; returns the model.

    ``scheme``: ``"default"`` (each layer's own ``reset_parameters``, biases included), or one of
    ``normal`` (N(0, gain^2): ``gain`` is the standard deviation), ``xavier_normal``,
    ``xavier_uniform``, ``orthogonal`` (with ``gain``), ``kaiming_normal`` / ``kaiming_uniform``
    (fan_in, ReLU gain; ``gain`` unused) or ``lecun_normal`` (TF ``variance_scaling_initializer``:
    truncated normal with variance gain^2 / fan_in). Except for ``default`` biases are set to zero.
    Normalisation layers are left untouched.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(
            f"unknown init scheme {scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}"
        )
    for module in model.modules():
        if not isinstance(module, _WEIGHTED):
            continue
        if scheme == "default":
            module.reset_parameters()
            continue
        _SCHEMES[scheme](module.weight, gain)
        if module.bias is not None:
            module.bias.zero_()
    return model
