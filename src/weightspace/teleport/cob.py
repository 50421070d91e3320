"""Sampling a change of basis (CoB): one non-zero scalar per hidden neuron or channel
(teleport.md §4), drawn from an explicit seeded generator."""

from __future__ import annotations

import torch

SAMPLING_TYPES = (
    "intra_landscape",
    "inter_landscape",
    "positive",
    "negative",
    "centered",
)
# the original's names before it renamed them
OLD_NAMES = {
    "within_landscape": "intra_landscape",
    "change_landscape": "inter_landscape",
}


def _uniform(size: int, low: float, high: float, generator) -> torch.Tensor:
    u = torch.rand(size, generator=generator, dtype=torch.float64)
    return low + (high - low) * u


def sample_cob(
    size: int,
    sampling_type: str = "intra_landscape",
    cob_range: float = 0.5,
    center: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``size`` i.i.d. scalars (float64):

    - intra_landscape: U[1 - r, 1 + r], r <= 1;
    - inter_landscape: with probability 1/2 U[-1 - r, -1 + r], else U[1 - r, 1 + r];
    - positive: U[0, r]; negative: U[-r, 0];
    - centered: U[center - r, center + r], r <= center.
    """
    kind = OLD_NAMES.get(sampling_type, sampling_type)
    if kind not in SAMPLING_TYPES:
        raise ValueError(
            f"unknown CoB sampling type {sampling_type!r}; use one of {SAMPLING_TYPES}"
        )
    if cob_range < 0:
        raise ValueError(f"cob_range must be >= 0, got {cob_range}")
    r = float(cob_range)
    if kind == "intra_landscape":
        if r > 1:
            raise ValueError(
                f"intra_landscape needs cob_range <= 1 (got {r}): a larger range "
                "allows negative scalars; use inter_landscape"
            )
        return _uniform(size, 1 - r, 1 + r, generator)
    if kind == "inter_landscape":
        magnitude = _uniform(size, 1 - r, 1 + r, generator)
        negative = torch.rand(size, generator=generator, dtype=torch.float64) < 0.5
        return torch.where(negative, -magnitude, magnitude)
    if kind == "positive":
        return _uniform(size, 0.0, r, generator)
    if kind == "negative":
        return _uniform(size, -r, 0.0, generator)
    if center <= 0 or r > center:
        raise ValueError(
            f"centered needs center > 0 and cob_range <= center (got {r}, {center})"
        )
    return _uniform(size, center - r, center + r, generator)
