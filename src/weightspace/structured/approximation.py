"""Common result type of the structured-matrix approximators and the parameter budget.

Conventions (spec §2): approximators work on W̃ ∈ R^{out×in} (the layer computes y = W̃u + b); a share
s ∈ [0, 1] allows B = ⌊s·out·in⌋ parameters for the weight matrix, bias excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


def param_budget(shape: tuple[int, int], share: float) -> int:
    """B = ⌊s·rows·cols⌋, computed as the original does (int() of the float product)."""
    rows, cols = (int(v) for v in shape)
    if rows < 0 or cols < 0:
        raise ValueError(f"shape must be non-negative, got {shape}")
    if not math.isfinite(share) or share < 0:
        raise ValueError(f"parameter share must be a finite number >= 0, got {share}")
    return int(share * rows * cols)


def as_matrix(weight: Any) -> np.ndarray:
    """A float64 copy of a 2-D finite matrix (numpy array or torch tensor), with a clear error otherwise."""
    if hasattr(weight, "detach"):  # torch tensor
        weight = weight.detach().cpu().numpy()
    mat = np.array(weight, dtype=np.float64)
    if mat.ndim != 2:
        raise ValueError(f"expected a 2-D weight matrix, got shape {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise ValueError("weight matrix contains NaN or Inf")
    return mat


@dataclass(frozen=True, eq=False)
class Approximation:
    """A structured approximation W̃ of a matrix W.

    dense:     W̃ as a dense float64 array (same shape as W).
    n_params:  parameters charged against the budget (weight matrix only, the method's own count).
    structure: the method's factors (e.g. an SSSRealisation or LowRankFactors); None for the zero matrix.
    method:    short method name ("SSS", "LR", ...).
    info:      scalars describing the choice (rank, state dimension, budget, alternative counts, ...).
    """

    dense: np.ndarray
    n_params: int
    structure: Any
    method: str
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.dense.shape)

    def error(self, weight: Any) -> float:
        """‖W − W̃‖_F."""
        return float(np.linalg.norm(as_matrix(weight) - self.dense))

    def relative_error(self, weight: Any) -> float:
        """‖W − W̃‖_F / ‖W‖_F (0 for W = W̃ = 0)."""
        mat = as_matrix(weight)
        norm = float(np.linalg.norm(mat))
        diff = float(np.linalg.norm(mat - self.dense))
        return diff / norm if norm > 0 else diff


def resolve_budget(
    shape: tuple[int, int], share: float | None, budget: int | None
) -> int:
    """The parameter budget: ⌊share·size⌋, or an explicit count that overrides the share."""
    if budget is None:
        if share is None:
            raise ValueError("give a parameter share or an explicit parameter budget")
        return param_budget(shape, share)
    if int(budget) != budget or budget < 0:
        raise ValueError(
            f"parameter budget must be a non-negative integer, got {budget}"
        )
    return int(budget)
