"""Input normalisation with statistics of the training part only.

Modes (x has shape (N, C, ...)):
- "dataset": one mean and one std over all training pixels (teleport: "normalised with
  train mean/std");
- "channel": one mean/std per channel;
- "pixel": one mean/std per input position (credit assignment: "standardised per pixel").

Statistics are computed in float64 with the population std (ddof=0).  Positions whose
training std is below `min_std` (e.g. MNIST's always-black border pixels in "pixel"
mode) get std 1: they are only centred, instead of dividing by zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .splits import ArraySplit

MODES = ("dataset", "channel", "pixel")


@dataclass(frozen=True, eq=False)
class NormalizationStats:
    """Mean and std broadcastable against one example (shape () , (C, 1, ...) or (C, ...))."""

    mode: str
    mean: np.ndarray
    std: np.ndarray

    def apply(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """(x - mean) / std as float32, for numpy arrays or torch tensors."""
        if isinstance(x, torch.Tensor):
            mean = torch.as_tensor(self.mean, dtype=torch.float32, device=x.device)
            std = torch.as_tensor(self.std, dtype=torch.float32, device=x.device)
            return (x.to(torch.float32) - mean) / std
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(
            np.float32
        )


def fit_normalization(
    x_train: np.ndarray, mode: str = "dataset", min_std: float = 1e-8
) -> NormalizationStats:
    """Statistics of `x_train` for the given mode."""
    if mode not in MODES:
        raise ValueError(f"normalisation mode must be one of {MODES}, got {mode!r}")
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(
            f"x_train must have shape (N, C, ...) with N >= 1, got {x.shape}"
        )
    if mode == "dataset":
        mean, std = x.mean(), x.std()
    elif mode == "channel":
        axes = (0,) + tuple(range(2, x.ndim))
        mean, std = (
            x.mean(axis=axes, keepdims=True)[0],
            x.std(axis=axes, keepdims=True)[0],
        )
    else:
        mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std < min_std, 1.0, std)
    return NormalizationStats(mode=mode, mean=np.asarray(mean), std=np.asarray(std))


def normalize_split(
    split: ArraySplit, mode: str = "dataset"
) -> tuple[ArraySplit, NormalizationStats]:
    """Normalise both parts with statistics fitted on the training part alone."""
    stats = fit_normalization(split.x_train, mode)
    return split.replace_images(
        stats.apply(split.x_train), stats.apply(split.x_test)
    ), stats
