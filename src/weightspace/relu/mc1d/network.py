"""The network function of P two-layer nets of the 1-D Monte Carlo, computed densely:
the reference that the kernels are checked against, for tests and small evaluations."""

from __future__ import annotations

import torch

from weightspace.relu import criterion as crit


def network_output(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, w: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """f(x) for P nets at the points x (k,): (P, k). Dense; meant for tests and diagnostics."""
    pre = a.unsqueeze(1) * x.view(1, -1, 1) + b.unsqueeze(1)
    return c.unsqueeze(1) + (torch.relu(pre) * w.unsqueeze(1)).sum(2)


def loss(a, b, c, w, weights: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """½ Σ_j p̂_j (f(x_j) − y_j)² per net, (P,)."""
    x = crit.points(a.device, a.dtype)
    return 0.5 * (weights * (network_output(a, b, c, w, x) - y) ** 2).sum(1)
