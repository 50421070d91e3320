"""What the relu experiments share: Adam's constants, training dtypes by name, and the
validation and dict form of their config dataclasses.

Free of torch at import (``torch_dtype`` imports it when called), so that config classes
built on it stay light.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the originals
ADAM_EPS = 1e-8
DTYPES = ("float32", "float64")  # the training dtypes, by name


def torch_dtype(name: str):
    """The torch dtype of a config's ``dtype`` name ("float32" or "float64")."""
    import torch

    check_choice("dtype", name, DTYPES)
    return {"float32": torch.float32, "float64": torch.float64}[name]


def check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def choice(default, choices: Sequence):
    """A config dataclass field that takes one of ``choices``."""
    return dataclasses.field(default=default, metadata={"choices": tuple(choices)})


def positive(default=dataclasses.MISSING):
    """A config dataclass field that is an integer >= 1."""
    return dataclasses.field(default=default, metadata={"positive": True})


class ConfigBase:
    """Base of the relu config dataclasses: ``__post_init__`` checks the fields
    declared with ``choice`` and ``positive``; ``to_dict``, and ``from_dict``, which
    names unknown keys (a checkpoint or result written by other code) instead of
    failing on a keyword."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if "choices" in f.metadata:
                check_choice(f.name, value, f.metadata["choices"])
            elif f.metadata.get("positive") and int(value) < 1:
                raise ValueError(f"{f.name} must be >= 1, got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}"
            )
        return cls(**dict(data))
