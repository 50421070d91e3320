"""Synthetic data of §4 and §5: the star data set and the distributions of the setups grid.

- ``star_dataset``: k rays at angles 2πi/k with points at radii 1 − δ, 1, 1 + δ labelled (1, −2, 1);
  ``2d_star_11`` is k = 11, δ = 0.1 (33 points in R²). Along each ray the labels are V-shaped, so a
  net that is affine in the radius on every ray (all kinks through the origin) cannot fit them.
- ``ex-distr`` (1D, the paper's Figure 1): X = ±B/√(105/196), B ~ Beta(5, 2), random sign, so
  E[X²] = 1 (E[B²] = 30/56 = 105/196). y = cos(7π(X − X/√(1+X²))) + 0.2X², shifted and scaled by
  (y + 0.074)/0.727 so the per-side least-squares intercepts are ≈ 0 and E[y²] ≈ 1, plus noise
  N(0, 0.1²)/0.727 (Bayes RMSE 0.1/0.727 ≈ 0.1376).
- ``rad-distr-d``: X = √3·U·u with U ~ U(0, 1) and u uniform on S^{d−1}; y = cos(2πU), noise-free.

Samples are drawn with a numpy Generator so that data sets do not depend on the torch device.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

STAR_LABELS = (1.0, -2.0, 1.0)
_BETA_A, _BETA_B = 5.0, 2.0
_BETA_RMS = math.sqrt(105.0 / 196.0)  # √E[B²] for B ~ Beta(5, 2)
EX_SHIFT, EX_SCALE, EX_NOISE = 0.074, 0.727, 0.1
RAD_RADIUS = math.sqrt(3.0)


def star_dataset(rays: int = 11, delta: float = 0.1, dtype=torch.float64):
    """(x (3k, 2), y (3k,)): ray i holds radii 1 − δ, 1, 1 + δ (in this order) at angle 2πi/k."""
    if rays < 1 or not 0.0 < delta < 1.0:
        raise ValueError(
            f"need rays >= 1 and 0 < delta < 1, got rays={rays}, delta={delta}"
        )
    angles = 2.0 * math.pi * torch.arange(rays, dtype=torch.float64) / rays
    dirs = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (k, 2)
    radii = torch.tensor([1.0 - delta, 1.0, 1.0 + delta], dtype=torch.float64)
    x = (dirs[:, None, :] * radii[None, :, None]).reshape(-1, 2)
    y = torch.tensor(STAR_LABELS, dtype=torch.float64).repeat(rays)
    return x.to(dtype), y.to(dtype)


def ex_target(x):
    """Noise-free ex-distr label (after the shift and scale), for numpy arrays or tensors."""
    lib = torch if isinstance(x, torch.Tensor) else np
    y = lib.cos(7.0 * math.pi * (x - x / lib.sqrt(1.0 + x * x))) + 0.2 * x * x
    return (y + EX_SHIFT) / EX_SCALE


@dataclass(frozen=True)
class Distribution:
    """``kind`` is "ex" or "rad"; ``dim`` the input dimension."""

    kind: str
    dim: int

    @property
    def name(self) -> str:
        return "ex-distr" if self.kind == "ex" else f"rad-distr-{self.dim}"

    @property
    def noise_std(self) -> float:
        return EX_NOISE / EX_SCALE if self.kind == "ex" else 0.0

    @property
    def bayes_rmse(self) -> float:
        """RMSE of the true regression function (the label noise level)."""
        return self.noise_std

    def sample(
        self, n_sets: int, n_samples: int, rng: np.random.Generator, dtype=torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n_sets independent data sets: X (n_sets, n, d), y (n_sets, n)."""
        shape = (n_sets, n_samples)
        if self.kind == "ex":
            sign = rng.integers(0, 2, size=shape) * 2 - 1
            x = sign * rng.beta(_BETA_A, _BETA_B, size=shape) / _BETA_RMS
            y = ex_target(x) + rng.standard_normal(shape) * self.noise_std
            return (
                torch.as_tensor(x[..., None], dtype=dtype),
                torch.as_tensor(y, dtype=dtype),
            )
        # float32 normals keep the d = 64 training sets (100 × 16384 × 64) at a few hundred MB.
        normal = rng.standard_normal((*shape, self.dim), dtype=np.float32)
        u = rng.random(shape)
        direction = normal / np.linalg.norm(normal, axis=2, keepdims=True)
        x = (RAD_RADIUS * u).astype(np.float32)[..., None] * direction
        y = np.cos(2.0 * math.pi * u)
        return torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)


def get_distribution(name: str) -> Distribution:
    """``"ex-distr"`` or ``"rad-distr-<d>"``."""
    if name == "ex-distr":
        return Distribution("ex", 1)
    match = re.fullmatch(r"rad-distr-(\d+)", name)
    if match and int(match.group(1)) >= 1:
        return Distribution("rad", int(match.group(1)))
    raise ValueError(
        f"unknown distribution {name!r}; use 'ex-distr' or 'rad-distr-<d>' with d >= 1"
    )
