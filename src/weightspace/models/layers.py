"""Small building blocks shared by the model builders.

Merges (``Add``, ``Concat``) are modules rather than inline ``+`` / ``torch.cat`` so that code
walking a network (teleportation, tracing) can see where branches meet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}
_ACTIVATION_ALIASES = {
    "leaky_relu": "leakyrelu",
    "linear": "identity",
    "none": "identity",
    "swish": "silu",
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (every call returns a distinct object)."""
    key = str(name).lower()
    key = _ACTIVATION_ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        known = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; choose one of: {known}")
    return ACTIVATIONS[key]()


def as_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """Normalise ``image_size`` (an int for square images, or (height, width)) to a pair."""
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        size = (image_size, image_size)
    elif isinstance(image_size, Sequence) and len(image_size) == 2:
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(
            f"image_size must be an int or a (height, width) pair, got {image_size!r}"
        )
    if min(size) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return size


def check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


class Add(nn.Module):
    """Sum of two branches: ``first + second``; ``first`` is the branch computed first."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return first + second


class Concat(nn.Module):
    """Channel concatenation of a list of tensors, in the order they were computed."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(tensors), self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
