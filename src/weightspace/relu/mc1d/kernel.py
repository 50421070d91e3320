"""What every kernel of the 1-D Monte Carlo shares: residual sums per neuron for P nets.

The P nets' parameters (``_Nets``, (P, m) tensors and c (P,)) are updated in place. All
kernels track, per step, the max over neurons of |ξ| for the kink ξ = −b/a, folded into
the running pair (vmax, vmin) as (+max|ξ|, −max|ξ|): vmax ≥ every ξ ≥ vmin, and max|b/a|
= max(vmax, −vmin) exactly (``_max_kink``). The kernels are ``scatter.py`` (per-class
running sums), ``dense.py`` (an activation mask and batched matrix products) and
``c_kernel.py`` (the scatter kernel's arithmetic in C); ``gd.py`` picks one by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from weightspace.relu import criterion as crit
from weightspace.relu.mc1d.minibatches import _minibatch_blocks


@dataclass
class _Nets:
    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    w: torch.Tensor


def _max_kink(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    return torch.maximum(hi, -lo)


def _rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """t broadcast to (n, 6) (a no-op, skipped, when it already is)."""
    return t if t.shape == (n, 6) else t.expand(n, 6)


def _fold_kinks(zero, a, b, vmax, vmin, kink_out, ext, scratch) -> torch.Tensor:
    """Kinks −b/a into ``kink_out``; max_i |kink_i| folded into vmax and −max_i |kink_i| into vmin
    (in place). ``scratch`` (same shape as a) may be ``kink_out`` when the kinks are not needed."""
    kink = torch.addcdiv(zero, b, a, value=-1.0, out=kink_out)
    # One row reduction instead of amax and amin: a reduction over short rows costs several
    # elementwise passes, and max|ξ| = max(ξ_max, −ξ_min) is all that is ever read.
    torch.amax(torch.abs(kink, out=scratch), 1, out=ext)
    torch.maximum(vmax, ext, out=vmax)
    torch.minimum(vmin, ext.neg_(), out=vmin)
    return kink


class _Kernel:
    """Residual sums per neuron for n nets of width m.

    ``backprop`` fills ``g0``/``g1`` (n, m) with S0_i = Σ_j r_j 1_ij and S1_i = Σ_j r_j x_j 1_ij for
    the weighted residual r = coef·(f − y) = coef·f + ncy (ncy = −coef·y, passed in) and returns
    Σ_j r_j. Both it and ``track`` fold max_i |kink_i| at the current parameters into vmax (and its
    negative into vmin), (n,). ``gd_step`` is one GD step θ ← θ − (gradients scaled by h through coef) in place.
    """

    def __init__(self, n: int, m: int, device, dtype):
        self.n, self.m = n, m
        self.device, self.dtype = device, dtype
        self.zero = torch.zeros((), device=device, dtype=dtype)
        self.x = crit.points(device, dtype)

    def gd_step(self, nets: _Nets, coef, ncy, vmax, vmin) -> None:
        rsum = self.backprop(nets.a, nets.b, nets.c, nets.w, coef, ncy, vmax, vmin)
        _gd_update(nets, self, rsum)

    def gd_steps(
        self, nets: _Nets, coef, ncy, vmax, vmin, steps: int | None = None
    ) -> None:
        """``steps`` GD steps with the same (n, 6) coef and ncy, or one step per row of (n, k, 6)
        blocks (SGD)."""
        if coef.dim() == 3:
            for coef_t, ncy_t in zip(coef.unbind(1), ncy.unbind(1)):
                self.gd_step(nets, coef_t, ncy_t.contiguous(), vmax, vmin)
        else:
            for _ in range(1 if steps is None else steps):
                self.gd_step(nets, coef, ncy, vmax, vmin)

    def sgd_steps(
        self,
        nets: _Nets,
        weights,
        h,
        y,
        ids,
        key: int,
        size: int,
        steps: int,
        vmax,
        vmin,
    ) -> None:
        """``steps`` minibatch SGD steps: ``size`` draws per step from the point weights
        (n, 6), the minibatches of check key ``key`` for the nets ``ids`` (minibatches.py),
        step sizes h (n,) going into the coefficients."""
        for coef in _minibatch_blocks(weights, size, steps, key, ids, h):
            self.gd_steps(nets, coef, torch.mul(coef, y).neg_(), vmax, vmin)


def _gd_update(nets: _Nets, kern: _Kernel, rsum: torch.Tensor) -> None:
    """θ ← θ − (gradients already scaled by h through coef), all at the old parameters."""
    a, b, w = nets.a, nets.b, nets.w
    new_w = torch.addcmul(w, a, kern.g1, value=-1.0, out=kern.spare)
    new_w.addcmul_(b, kern.g0, value=-1.0)
    a.addcmul_(w, kern.g1, value=-1.0)
    b.addcmul_(w, kern.g0, value=-1.0)
    nets.c.sub_(rsum)
    nets.w, kern.spare = new_w, w
