"""Fig. 5, 1-D flatness is not teleport-invariant (teleport.md §8): loss and accuracy
along (1 - alpha) W_A + alpha W_B, before and after teleporting both endpoints.

Teleportation keeps each endpoint's function, so the profile agrees at alpha = 0 and 1;
between and beyond them it changes. By default the weights alone are interpolated, which
is exact for positive CoBs and positively homogeneous activations (ReLU: tau relu(x/tau)
= relu(x)); ``interpolate_cob`` interpolates the activation CoBs too, as the original
did (outside [0, 1] an interpolated tau can reach 0 or change sign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from weightspace.teleport.model import TeleportableModel
from weightspace.training.loop import evaluate


def profile(
    model: TeleportableModel,
    endpoints: tuple[
        tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
    ],
    alphas: Sequence[float],
    loaders: Mapping[str, object],
    interpolate_cob: bool = False,
    device: str = "cpu",
) -> list[dict]:
    """Loss and accuracy per alpha and loader, for endpoints given as (weights, CoB)."""
    (w_a, c_a), (w_b, c_b) = endpoints
    if not interpolate_cob and (torch.any(c_a <= 0) or torch.any(c_b <= 0)):
        raise ValueError(
            "interpolating the weights alone needs positive CoBs (intra_landscape or "
            "positive sampling); set interpolate_cob to interpolate the CoBs as well"
        )
    ones = torch.ones_like(c_a)
    rows = []
    for alpha in alphas:
        weights = (1 - alpha) * w_a + alpha * w_b
        cob = (1 - alpha) * c_a + alpha * c_b if interpolate_cob else ones
        if torch.any(cob == 0):
            cob = torch.where(cob == 0, torch.full_like(cob, 1e-12), cob)
        model.set_params(weights, cob)
        for name, batches in loaders.items():
            metrics = evaluate(model, batches, device=device)
            rows.append({"alpha": float(alpha), "split": name, **metrics})
    return rows
