"""Minibatches of the stochastic Monte Carlo variants (SGD, Adam), as sample
frequencies.

A minibatch of ``size`` points drawn i.i.d. from p̂ (six points) is Multinomial(size, p̂);
only its counts enter a step. They are drawn directly: draw j of step t of net ``id``
is the category of u = top 53 bits of SplitMix64 at counter (id, t, j) of a per-check
key, u compared with the running sums of p̂. The stream is counter-based, so a net's
minibatches do not depend on which other nets still train, on how steps are blocked,
or on the kernel: the C kernel (csrc/mc1d_step.c) draws the same numbers in its step
loop, and this module is its PyTorch reference (the scatter and dense kernels, Adam).
"""

from __future__ import annotations

import torch

from weightspace.relu.mc1d.config import MAX_MINIBATCH, MAX_NETS, MAX_STEPS

# Minibatches are drawn for a block of steps at once; a block holds at most this many draws.
_MINIBATCH_DRAWS = 1 << 21


_U64 = 1 << 64
_GOLDEN = 0x9E3779B97F4A7C15 - _U64  # as int64: torch arithmetic wraps modulo 2^64
_MIX1 = 0xBF58476D1CE4E5B9 - _U64
_MIX2 = 0x94D049BB133111EB - _U64


def draw_key(gen: torch.Generator) -> int:
    """The 64-bit key of one check's minibatches, from the chunk's generator (as int64)."""
    return int(
        torch.randint(-(1 << 63), (1 << 63) - 1, (1,), generator=gen, dtype=torch.int64)
    )


def _shift_right(z: torch.Tensor, s: int) -> torch.Tensor:
    return (z >> s) & ((1 << (64 - s)) - 1)  # logical shift of int64


def splitmix64(key: int, counter: torch.Tensor) -> torch.Tensor:
    """SplitMix64 outputs at positions ``counter`` (int64) of the stream seeded with
    ``key``: mix(key + (counter + 1)·γ), as int64 bit patterns."""
    z = (counter + 1) * _GOLDEN + key
    z = (z ^ _shift_right(z, 30)) * _MIX1
    z = (z ^ _shift_right(z, 27)) * _MIX2
    return z ^ _shift_right(z, 31)


def check_bounds(n_ids: int, size: int, steps: int) -> None:
    """Refuses chunks whose counters would not fit the layout (id, t, j)."""
    if n_ids > MAX_NETS or size > MAX_MINIBATCH or steps > MAX_STEPS:
        raise ValueError(
            f"minibatch counters hold at most {MAX_NETS} nets per chunk, minibatch_size "
            f"{MAX_MINIBATCH} and steps_per_check {MAX_STEPS}; got {n_ids}, {size} and "
            f"{steps}: split the chunk (relu.mc.chunk_runs) or lower the others"
        )


def _thresholds(weights: torch.Tensor) -> torch.Tensor:
    """Running sums p̂_0, p̂_0 + p̂_1, …, of the first five points (n, 5), summed left to
    right as the C kernel does."""
    cdf = weights[:, :5].clone()
    for k in range(1, 5):
        cdf[:, k] += cdf[:, k - 1]
    return cdf


def minibatch_frequencies(weights, size, steps, key, ids, scale=None):
    """Yield, for each of ``steps`` steps, the (n, 6) minibatch frequencies
    Multinomial(size, p̂)/size per net, times ``scale`` (n,) if given. ``key`` is the
    check's key (``draw_key``), ``ids`` (n,) the nets' indices in the chunk."""
    for freq in _minibatch_blocks(weights, size, steps, key, ids, scale):
        yield from freq.unbind(1)


def _minibatch_blocks(weights, size, steps, key, ids, scale=None):
    """The blocks behind ``minibatch_frequencies``: (n, k, 6) frequencies for k consecutive steps."""
    n, points = weights.shape
    check_bounds(int(ids.max()) + 1 if n else 0, size, steps)
    cdf = _thresholds(weights).view(n, 1, 1, points - 1)
    net = (ids.to(torch.int64) << 40).view(n, 1, 1)
    draw = torch.arange(size, device=weights.device).view(1, 1, size)
    block = max(1, min(steps, _MINIBATCH_DRAWS // max(1, n * size)))
    for start in range(0, steps, block):
        k = min(block, steps - start)
        step = (torch.arange(start, start + k, device=weights.device) << 16).view(
            1, k, 1
        )
        bits = splitmix64(key, net | step | draw)
        u = _shift_right(bits, 11).to(weights.dtype).mul_(2.0**-53)
        category = (u.unsqueeze(-1) >= cdf).sum(-1)  # (n, k, size)
        counts = torch.zeros(n, k, points, device=weights.device, dtype=weights.dtype)
        counts.scatter_add_(2, category, torch.ones_like(u))
        freq = counts.div_(size)
        if scale is not None:
            freq.mul_(scale.view(n, 1, 1))
        yield freq
