"""Fig. 11, teleported weights are distributed differently (teleport.md §8): the weights
of the MLP 5x500 at its default initialisation, after the "same distribution" control
(Linear weights re-drawn from the histogram of a teleported copy) and after one
teleportation.

Default init draws every weight from U(±1/sqrt(fan_in)); a teleportation multiplies a
hidden-to-hidden weight by tau_i/tau_j, which is heavy-tailed for tau near 1 - r.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import gaussian_kde, kurtosis

from weightspace.teleport.controls import Teleport, apply_arm
from weightspace.teleport.model import TeleportableModel


def weight_panels(
    model: torch.nn.Module,
    example_input: torch.Tensor,
    cob_range: float,
    same_distr_range: float,
    bins: int,
    generator: torch.Generator,
) -> dict[str, np.ndarray]:
    """All weights and biases of ``model`` in the three states of Fig. 11."""

    def flat(m):
        return torch.cat([p.detach().flatten() for p in m.parameters()]).numpy()

    resampled, _ = apply_arm(
        copy.deepcopy(model),
        "same_distr",
        example_input,
        Teleport(same_distr_range, "intra_landscape", bins),
        generator,
    )
    teleported = TeleportableModel(copy.deepcopy(model), example_input)
    teleported.teleport(
        teleported.generate_random_cob(
            cob_range, "intra_landscape", generator=generator
        )
    )
    return {
        "init": flat(model),
        "same_distr": flat(resampled),
        "teleported": flat(teleported.network),
    }


def weight_statistics(values: np.ndarray, init_bound: float) -> dict[str, float]:
    return {
        "count": int(values.size),
        "std": float(values.std()),
        "kurtosis": float(kurtosis(values, fisher=False)),
        "min": float(values.min()),
        "max": float(values.max()),
        "outside_init_bound": float(np.mean(np.abs(values) > init_bound)),
    }


def density(values: np.ndarray, grid: np.ndarray, sample: int, seed: int) -> np.ndarray:
    """Gaussian KDE of ``values`` on ``grid`` from a seeded subsample (the full
    2.5 million weights would cost minutes and change nothing visible)."""
    rng = np.random.default_rng(seed)
    if values.size > sample:
        values = rng.choice(values, sample, replace=False)
    estimate = gaussian_kde(values)(grid)
    return np.where(estimate < 1e-9, 0.0, estimate)  # no denormal tails in the CSV


def init_bound(model: torch.nn.Module) -> float:
    """The widest bound 1/sqrt(fan_in) of PyTorch's default Linear initialisation."""
    fan_ins = [m.in_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return 1.0 / float(np.sqrt(min(fan_ins)))
