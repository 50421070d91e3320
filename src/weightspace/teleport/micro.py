"""Fig. 4, micro-teleportation (teleport.md §6): a teleportation with tau = 1 + eps,
|eps| <= 0.001, moves the weights along the orbit of W, which lies in a level set of the
loss, so the displacement is orthogonal to the gradient up to O(eps); independent random
vectors in R^d are orthogonal only up to a spread of (180/pi)/sqrt(d) degrees.

Ours takes the gradient at W (the original: at the previous micro-teleported point) and
every micro-teleportation from W with a fresh CoB (the original compounded stale CoBs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from weightspace.teleport.model import TeleportableModel


def angle_degrees(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    return math.degrees(math.acos(float(cos.clamp(-1.0, 1.0))))


def micro_angles(
    model: TeleportableModel,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    cob_range: float,
    generator: torch.Generator,
) -> list[dict[str, float]]:
    """Per batch: the angles (degrees) between the gradient g at W, a micro-teleportation
    displacement delta = T(W) - W and random vectors u, v ~ U[-0.5, 0.5]^d:
    (delta, g), (delta, v), (g, u), (u, v). The weights are W again afterwards."""
    start = model.get_weights()
    rows = []
    for inputs, targets in batches:
        model.set_weights(start)
        grad = model.get_grad(inputs, targets, F.cross_entropy).cpu()
        model.teleport(model.generate_random_cob(cob_range, generator=generator))
        delta = (model.get_weights().double() - start.double()).cpu()
        u, v = (
            torch.rand(start.numel(), generator=generator, dtype=torch.float64) - 0.5
            for _ in range(2)
        )
        rows.append(
            {
                "delta_grad": angle_degrees(delta, grad),
                "delta_random": angle_degrees(delta, v),
                "grad_random": angle_degrees(grad, u),
                "random_random": angle_degrees(u, v),
            }
        )
    model.set_weights(start)
    return rows
