"""Fig. 7, teleportation changes the gradient (teleport.md §8): per CoB range sigma, the
mean and std over teleports and batches of |‖∇L(W)‖/‖W‖ − ‖∇L(TW)‖/‖TW‖|.

Every teleport starts from the original weights with a fresh CoB (the original divided by
the previous, stale CoB, which widens the effective distribution; the model's
``compound_stale_cob`` reproduces it). W and TW see the same batch and the same random
state, so dropout masks are identical (the original's differed). Norms are over the
trainable parameters of the neuron layers (no BatchNorm running statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from weightspace.teleport.model import TeleportableModel


def _grad(model: TeleportableModel, inputs, targets, seed: int) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model.get_grad(inputs, targets, F.cross_entropy)


def gradient_change(
    model: TeleportableModel,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    cob_ranges: Sequence[float],
    teleports: int,
    generator: torch.Generator,
    sampling_type: str = "intra_landscape",
) -> list[dict]:
    """One row per (range, teleport, batch): the plotted quantity and the two norm
    ratios ‖TW‖/‖W‖ and ‖∇L(TW)‖/‖∇L(W)‖."""
    start = model.get_weights()
    w_norm = float(start.norm())
    base = [_grad(model, x, y, seed) for seed, (x, y) in enumerate(batches)]
    rows = []
    for sigma in cob_ranges:
        for t in range(teleports):
            model.set_weights(start)
            cob = model.generate_random_cob(sigma, sampling_type, generator=generator)
            model.teleport(cob)
            tw_norm = float(model.get_weights().norm())
            for seed, (x, y) in enumerate(batches):
                g = _grad(model, x, y, seed)
                g0 = base[seed]
                rows.append(
                    {
                        "cob_range": float(sigma),
                        "teleport": t,
                        "batch": seed,
                        "value": abs(
                            float(g0.norm()) / w_norm - float(g.norm()) / tw_norm
                        ),
                        "weight_norm_ratio": tw_norm / w_norm,
                        "grad_norm_ratio": float(g.norm() / g0.norm()),
                    }
                )
    model.set_weights(start)
    return rows
