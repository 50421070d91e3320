"""Minibatches of the stochastic Monte Carlo variants (SGD, Adam), as sample
frequencies."""

from __future__ import annotations

import torch

# Minibatches are drawn for a block of steps at once (one multinomial and one scatter instead of a
# handful of small ops per step); a block holds at most this many draws.
_MINIBATCH_DRAWS = 1 << 21


def minibatch_frequencies(
    weights: torch.Tensor,
    size: int,
    steps: int,
    gen: torch.Generator,
    scale: torch.Tensor | None = None,
):
    """Yield, for each of ``steps`` SGD steps, the (n, 6) minibatch frequencies
    Multinomial(size, p̂)/size per net (a minibatch of ``size`` points drawn i.i.d. from p̂),
    times ``scale`` (n,) if given. Draws are made for blocks of steps at once."""
    for freq in _minibatch_blocks(weights, size, steps, gen, scale):
        yield from freq.unbind(1)


def _minibatch_blocks(weights, size, steps, gen, scale=None):
    """The blocks behind ``minibatch_frequencies``: (n, k, 6) frequencies for k consecutive steps."""
    n, points = weights.shape
    block = max(1, min(steps, _MINIBATCH_DRAWS // max(1, n * size)))
    for start in range(0, steps, block):
        k = min(block, steps - start)
        draws = torch.multinomial(weights, k * size, replacement=True, generator=gen)
        # Draw j of step t lands in column t·6 + point.
        offset = torch.arange(k, device=weights.device).repeat_interleave(size) * points
        counts = torch.zeros(n, k * points, device=weights.device, dtype=weights.dtype)
        counts.scatter_add_(
            1, draws.add_(offset), torch.ones_like(draws, dtype=weights.dtype)
        )
        freq = counts.div_(size).view(n, k, points)
        if scale is not None:
            freq.mul_(scale.view(n, 1, 1))
        yield freq
