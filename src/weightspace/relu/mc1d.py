"""Vectorised 1D Monte Carlo of §2: do kinks of GD-trained two-layer ReLU nets reach a data point?

P networks f(x) = c + Σ_i w_i relu(a_i x + b_i) of width m are trained at once on the six-point
distribution (POINTS, LABELS + Δ) with per-net sample frequencies p̂ (n_s = m² samples), loss
L = ½ Σ_j p̂_j (f(x_j) − y_j)², in checks of K steps. Parameters live in (P, m) tensors (c: (P,));
a step is a fixed sequence of tensor ops over all live nets, with no host synchronisation.

The scatter step (``kernel="scatter"``) never forms the (P, 6, m) activation pattern. Since
x ↦ a_i x + b_i is monotone, neuron i is active on the k_i leftmost points (a_i < 0) or on the
6 − k_i rightmost ones (a_i > 0), k_i being the number of data points left of its kink −b_i/a_i.
Per net, running sums over these 14 classes of w·a and w·b give f at all six points; running sums
of the residuals give back, per class, S0 = Σ_{j active} r_j and S1 = Σ_{j active} r_j x_j, which
each neuron gathers. The gradients are ∂b = w S0, ∂a = w S1, ∂w = a S1 + b S0, ∂c = Σ_j r_j: O(P·m)
work in about thirty fused tensor ops, run on cache-sized blocks of nets (rows are independent, so
the blocking changes no result). ``kernel="dense"`` builds the (P, 6, m) mask and contracts
it with batched matrix products instead; it is the default on CUDA, where scatter_add_ uses float
atomics and would not be bit-reproducible. ``kernel="c"`` (the CPU default for float64 when a C
compiler is found, see ckernel.py) does the scatter kernel's arithmetic, operation for operation,
in C: one call runs a whole block of GD or SGD steps, net after net, and gives the same bits.

Statuses (codes as in the original): a check first marks nets whose running max of |b_i/a_i| (over
all steps and neurons) reached min_j |x_j| = 1 as CROSSED, then applies early stopping, then the
sufficient criterion (LOCALLY_CONVERGED, A_DEGENERATE, X_DEGENERATE; later wins among these three).
A net that fires several at the same check keeps the first in the order
CROSSED > EARLY_STOPPED > X_DEGENERATE > A_DEGENERATE > LOCALLY_CONVERGED, which is what the
original's sequence of removals does: a crossing is never hidden by a later stopping rule.
A net whose parameters stop being finite counts as CROSSED (its kinks are undefined).

Randomness: a numpy Generator seeded with ``seed`` draws, in this order, p̂, the validation p̂,
the initial parameters, and the seed of a torch Generator (on the run's device) that draws the
minibatches, so initial states do not depend on the device.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from weightspace.relu import ckernel
from weightspace.relu.statistics import Status, estimate_crossing_probability, wilson_interval  # noqa: F401
from weightspace.relu import criterion as crit
from weightspace.relu.criterion import LABELS, POINTS


OPTIMIZERS = ("gd", "sgd", "adam")
STEP_SIZES = ("large", "small")
KERNELS = ("auto", "c", "scatter", "dense")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass(frozen=True)
class MCConfig:
    """One training variant of §2.6; defaults are the main figure (GD, large step, sufficient)."""

    optimizer: str = "gd"
    step_size: str = "large"
    sufficient_criterion: bool = True
    early_stopping: bool = False
    swapped_init: bool = False  # a ~ N(0, 2/m), w ~ N(0, 2) instead of He
    steps_per_check: int = 1000
    max_checks: int = 1000
    minibatch_size: int = 16
    patience: int = 10
    min_delta: float = 1e-8
    small_step: float = 0.01  # h = small_step / m
    testing: bool = False  # keep certified nets running and record whether any crosses later
    psi_bound: str = "exact"  # "original" reproduces the original S_ψ bound (see criterion.py)
    kernel: str = "auto"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.step_size not in STEP_SIZES:
            raise ValueError(f"step_size must be one of {STEP_SIZES}, got {self.step_size!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.psi_bound not in ("exact", "original"):
            raise ValueError(f"psi_bound must be 'exact' or 'original', got {self.psi_bound!r}")
        for name in ("steps_per_check", "max_checks", "minibatch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.testing and not self.sufficient_criterion:
            raise ValueError("testing=True checks certified nets; it needs sufficient_criterion=True")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> MCConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MCConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(data))


# ---------------------------------------------------------------------------------------------
# Network function and reference gradient (dense, for checks and small evaluations)


def network_output(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, w: torch.Tensor,
                   x: torch.Tensor) -> torch.Tensor:
    """f(x) for P nets at the points x (k,): (P, k). Dense; meant for tests and diagnostics."""
    pre = a.unsqueeze(1) * x.view(1, -1, 1) + b.unsqueeze(1)
    return c.unsqueeze(1) + (torch.relu(pre) * w.unsqueeze(1)).sum(2)


def loss(a, b, c, w, weights: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """½ Σ_j p̂_j (f(x_j) − y_j)² per net, (P,)."""
    x = crit.points(a.device, a.dtype)
    return 0.5 * (weights * (network_output(a, b, c, w, x) - y) ** 2).sum(1)


# ---------------------------------------------------------------------------------------------
# Kernels: residual sums per neuron for P nets
#
# All kernels track, per step, the max over neurons of |ξ| for the kink ξ = −b/a, folded into the
# running pair (vmax, vmin) as (+max|ξ|, −max|ξ|): vmax ≥ every ξ ≥ vmin, and
# max|b/a| = max(vmax, −vmin) exactly, as before.
#
# Scatter kernel classes. Let k = #{j: x_j < ξ} ∈ 0…6 (points left of the kink). A neuron with a < 0
# is active on the k leftmost points, one with a > 0 on the 6 − k rightmost. Its bin in a 16-wide
# row is k (a < 0) or 8 + k (a > 0). With C the running sum over the bins of the per-class sums of
# (w a, w b):  f_j = c + x_j (C_A[8 + j] − C_A[j]) + (C_B[8 + j] − C_B[j]),  because
# C[8 + j] − C[j] = Σ_{a>0, k ≤ j} + (Σ_{a<0} − Σ_{a<0, k ≤ j}). Backwards, with
# R_k = Σ_{j<k} r_j, a neuron with a < 0 in class k gets R_k and one with a > 0 gets R_6 − R_k.
# k is computed without a search: softshrink(ξ, ½) squeezes the gap (−1, 1) to (−½, ½) and moves
# every other point by ½ towards 0, so k = 3 + round(clamp(softshrink(ξ, ½), −3, 3)).
#
# The C kernel (csrc/mc1d_step.c) runs these steps, with the same operations in the same order,
# for one net at a time (its bins in local arrays, its parameters in cache for a whole block of
# steps); the kink tracking, the early-stopping forward and Adam's backprop use the scatter kernel.

# x + 1.5·2^52 rounds x to an integer held in the low mantissa bits (for |x| < 2^51).
_MAGIC = 6755399441055744.0

# The scatter kernel works through the nets in blocks of about 2^16 (m ≤ 256) or 2^17 net·neuron
# entries, so that a block's parameters and workspaces (~10 arrays of that size) stay in the
# last-level cache for the whole step instead of streaming every (P, m) intermediate through
# memory. Smaller blocks pay more per-op dispatch (~30 ops a block, ~60 µs); these sizes were the
# fastest on a 1 MiB L2 / 32 MiB L3 CPU at m = 16…1024 and are not critical within a factor 2.


def _block_rows(m: int) -> int:
    entries = 1 << 16 if m <= 256 else 1 << 17
    return max(1, entries // max(1, m))


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

    def gd_steps(self, nets: _Nets, coef, ncy, vmax, vmin, steps: int | None = None) -> None:
        """``steps`` GD steps with the same (n, 6) coef and ncy, or one step per row of (n, k, 6)
        blocks (SGD)."""
        if coef.dim() == 3:
            for coef_t, ncy_t in zip(coef.unbind(1), ncy.unbind(1)):
                self.gd_step(nets, coef_t, ncy_t.contiguous(), vmax, vmin)
        else:
            for _ in range(1 if steps is None else steps):
                self.gd_step(nets, coef, ncy, vmax, vmin)


class _ScatterWorkspace:
    """Per-block buffers of the scatter kernel for ``rows`` nets (views into the kernel's buffers)."""

    def __init__(self, buf: dict, rows: int):
        self.q = buf["q"][:rows]
        self.idx = self.q.view(torch.int64)  # the class index reuses the bits of q
        self.g0 = buf["g0"][:rows]
        self.g1 = buf["g1"][:rows]
        self.ext = buf["ext"][:rows]
        self.f = buf["f"][:rows]
        # (w a, w b) side by side as one complex number, so that a single scatter_add_ sums both
        # (complex addition is the two float additions, in the same order).
        src = buf["src"][:rows]
        self.wa, self.wb = src[..., 0], src[..., 1]
        self.src = torch.view_as_complex(src)
        self.hist = buf["hist"][:rows]  # per-class sums, then (in place) their running sums
        self.lo_bins, self.hi_bins = self.hist[:, 0:6], self.hist[:, 8:14]
        self.fparts = buf["fparts"][:rows]
        fp = torch.view_as_real(self.fparts)
        self.fp_a, self.fp_b = fp[..., 0], fp[..., 1]
        # Residuals: channel 1 r_j, channel 0 x_j r_j, contiguous (x spelt out per row).
        resid = buf["resid"][:, :rows]
        self.r, self.xr, self.resid = resid[1], resid[0], resid
        self.x_rows = buf["x_rows"][:rows]
        # Channel 0 holds x_j r_j, channel 1 r_j. Columns 0…6 become R_k (column 0 stays 0),
        # columns 8…14 R_6 − R_k; 7 and 15 are never used.
        table = buf["table"][:, :rows]
        self.table0, self.table1 = table[0], table[1]
        self.prefix = table[:, :, 1:7]
        self.lower = table[:, :, 0:7]
        self.total = table[:, :, 6:7]
        self.upper = table[:, :, 8:15]
        self.rsum = table[1, :, 6]


class _ScatterKernel(_Kernel):
    """Per-class running sums (see above), computed block by block of ``rows`` nets.

    Rows are independent nets, so blocking changes no result; each block runs the whole step
    (classify, scatter, running sums, gather, update) while its data is in cache.
    """

    def __init__(self, n, m, device, dtype, rows: int | None = None):
        super().__init__(n, m, device, dtype)
        self.rows = max(1, min(n, rows if rows is not None else _block_rows(m)))
        rb = self.rows
        empty = lambda *shape, dt=dtype: torch.empty(*shape, device=device, dtype=dt)  # noqa: E731
        cdt = torch.complex128
        self._buf = {
            "q": empty(rb, m), "g0": empty(rb, m), "g1": empty(rb, m), "ext": empty(rb),
            "f": empty(rb, 6), "src": empty(rb, m, 2),
            "hist": empty(rb, 16, dt=cdt), "fparts": empty(rb, 6, dt=cdt), "resid": empty(2, rb, 6),
            "x_rows": self.x.expand(rb, 6).contiguous(),
            "table": torch.zeros(2, rb, 16, device=device, dtype=dtype),
        }
        self._ws = {}
        self._full = {}  # (n, m)-sized outputs, made on first use

    def _workspace(self, rows: int) -> _ScatterWorkspace:
        ws = self._ws.get(rows)
        if ws is None:
            ws = self._ws[rows] = _ScatterWorkspace(self._buf, rows)
        return ws

    def _out(self, name: str, *shape) -> torch.Tensor:
        t = self._full.get(name)
        if t is None:
            t = self._full[name] = torch.empty(*shape, device=self.device, dtype=self.dtype)
        return t

    def _split(self, *tensors):
        if self.rows >= self.n:  # one block: skip the views (each op costs microseconds)
            return (tensors,)
        return zip(*(t.split(self.rows) for t in tensors))

    @property
    def g0(self) -> torch.Tensor:
        return self._out("g0", self.n, self.m)

    @property
    def g1(self) -> torch.Tensor:
        return self._out("g1", self.n, self.m)

    @property
    def spare(self) -> torch.Tensor:  # receives the updated w; swapped with nets.w
        return self._out("spare", self.n, self.m)

    @spare.setter
    def spare(self, value: torch.Tensor) -> None:
        self._full["spare"] = value

    # -- one block -------------------------------------------------------------------------

    def _track_block(self, ws, a, b, vmax, vmin) -> torch.Tensor:
        return _fold_kinks(self.zero, a, b, vmax, vmin, ws.q, ws.ext, ws.g1)

    def _forward_block(self, ws, a, b, c, w, vmax, vmin, f) -> torch.Tensor:
        """f at the six points for one block; c is the (rows, 1) column of output biases."""
        t = self._track_block(ws, a, b, vmax, vmin)
        torch.ops.aten.softshrink.out(t, 0.5, out=t)
        t.clamp_(-3.0, 3.0)
        # a < 0 → 3 + t (bins 0…6), a > 0 → 11 + t (bins 8…14); the magic add does the rounding.
        t.add_(torch.sign(a, out=ws.g0), alpha=4.0).add_(7.0 + _MAGIC)
        # The low four bits are the bin; a NaN (diverged net) still yields a valid index.
        ws.idx.bitwise_and_(15)
        torch.mul(w, a, out=ws.wa)
        torch.mul(w, b, out=ws.wb)
        ws.hist.zero_().scatter_add_(1, ws.idx, ws.src).cumsum_(1)
        torch.sub(ws.hi_bins, ws.lo_bins, out=ws.fparts)
        torch.addcmul(ws.fp_b, ws.fp_a, self.x, out=f)
        return f.add_(c)

    def _backprop_block(self, ws, a, b, c, w, coef, ncy, vmax, vmin, g1, g0) -> torch.Tensor:
        f = self._forward_block(ws, a, b, c, w, vmax, vmin, ws.f)
        r = torch.addcmul(ncy, f, coef, out=ws.r)
        torch.mul(r, ws.x_rows, out=ws.xr)
        # Running sums from 0: the same additions as a running sum over (0, r_0, …, r_5).
        torch.cumsum(ws.resid, 2, out=ws.prefix)
        torch.sub(ws.total, ws.lower, out=ws.upper)
        torch.gather(ws.table0, 1, ws.idx, out=g1)
        torch.gather(ws.table1, 1, ws.idx, out=g0)
        return ws.rsum

    # -- all nets --------------------------------------------------------------------------

    def track(self, a, b, vmax, vmin) -> None:
        for a_k, b_k, hi_k, lo_k in self._split(a, b, vmax, vmin):
            self._track_block(self._workspace(a_k.shape[0]), a_k, b_k, hi_k, lo_k)

    def forward(self, a, b, c, w, vmax, vmin) -> torch.Tensor:
        f = self._out("f", self.n, 6)
        for a_k, b_k, c_k, w_k, hi_k, lo_k, f_k in self._split(a, b, c.unsqueeze(1), w, vmax, vmin, f):
            self._forward_block(self._workspace(a_k.shape[0]), a_k, b_k, c_k, w_k, hi_k, lo_k, f_k)
        return f

    def backprop(self, a, b, c, w, coef, ncy, vmax, vmin) -> torch.Tensor:
        n = self.n
        coef, ncy = _rows(coef, n), _rows(ncy, n)
        rsum = self._out("rsum", n)
        for a_k, b_k, c_k, w_k, coef_k, ncy_k, hi_k, lo_k, g1_k, g0_k, rsum_k in self._split(
                a, b, c.unsqueeze(1), w, coef, ncy, vmax, vmin, self.g1, self.g0, rsum):
            ws = self._workspace(a_k.shape[0])
            rsum_k.copy_(self._backprop_block(ws, a_k, b_k, c_k, w_k, coef_k, ncy_k, hi_k, lo_k,
                                              g1_k, g0_k))
        return rsum

    def gd_step(self, nets: _Nets, coef, ncy, vmax, vmin) -> None:
        """``backprop`` and ``_gd_update`` fused block by block; same operations, same results."""
        n = self.n
        coef, ncy = _rows(coef, n), _rows(ncy, n)
        new_w = self.spare
        for a, b, c, c_col, w, coef_k, ncy_k, hi_k, lo_k, nw in self._split(
                nets.a, nets.b, nets.c, nets.c.unsqueeze(1), nets.w, coef, ncy, vmax, vmin, new_w):
            ws = self._workspace(a.shape[0])
            rsum = self._backprop_block(ws, a, b, c_col, w, coef_k, ncy_k, hi_k, lo_k, ws.g1, ws.g0)
            torch.addcmul(w, a, ws.g1, value=-1.0, out=nw).addcmul_(b, ws.g0, value=-1.0)
            a.addcmul_(w, ws.g1, value=-1.0)
            b.addcmul_(w, ws.g0, value=-1.0)
            c.sub_(rsum)
        self.spare, nets.w = nets.w, new_w


class _DenseKernel(_Kernel):
    """(P, 6, m) activation mask contracted by batched matrix products; deterministic on CUDA."""

    def __init__(self, n, m, device, dtype):
        super().__init__(n, m, device, dtype)
        empty = lambda *shape: torch.empty(*shape, device=device, dtype=dtype)  # noqa: E731
        self.q = empty(n, m)
        self.spare = empty(n, m)  # receives the updated w; swapped with nets.w
        self.ext = empty(n)
        self.f = empty(n, 6)
        self.mask = torch.empty(n, 6, m, device=device, dtype=dtype)
        self.wab = torch.empty(n, 2, m, device=device, dtype=dtype)
        self.fab = torch.empty(n, 6, 2, device=device, dtype=dtype)
        self.rr = torch.empty(n, 2, 6, device=device, dtype=dtype)
        self.s = torch.empty(n, 2, m, device=device, dtype=dtype)
        self.g1, self.g0 = self.s[:, 0], self.s[:, 1]
        self.x3 = self.x.view(1, 6, 1)

    def track(self, a, b, vmax, vmin) -> torch.Tensor:
        return _fold_kinks(self.zero, a, b, vmax, vmin, self.q, self.ext, self.q)

    def forward(self, a, b, c, w, vmax, vmin) -> torch.Tensor:
        self.track(a, b, vmax, vmin)
        torch.addcmul(b.unsqueeze(1), a.unsqueeze(1), self.x3, out=self.mask)
        self.mask.gt_(0.0)
        torch.mul(w, a, out=self.wab[:, 0])
        torch.mul(w, b, out=self.wab[:, 1])
        torch.bmm(self.mask, self.wab.transpose(1, 2), out=self.fab)
        torch.addcmul(self.fab[:, :, 1], self.fab[:, :, 0], self.x, out=self.f)
        return self.f.add_(c.unsqueeze(1))

    def backprop(self, a, b, c, w, coef, ncy, vmax, vmin) -> torch.Tensor:
        f = self.forward(a, b, c, w, vmax, vmin)
        r = torch.addcmul(ncy, f, coef, out=self.rr[:, 1])
        torch.mul(r, self.x, out=self.rr[:, 0])
        torch.bmm(self.rr, self.mask, out=self.s)
        return r.sum(1)


class _CKernel(_Kernel):
    """GD steps in C (ckernel.gd_steps), bit-identical to the scatter kernel; ``forward``,
    ``backprop`` and ``track`` (early stopping, Adam, the fold after a block) are the scatter
    kernel's, made on first use."""

    def __init__(self, n, m, device, dtype):
        if torch.device(device).type != "cpu" or dtype != torch.float64:
            raise ValueError(f"the C kernel runs on the CPU in float64, got {device} and {dtype}; "
                             "use kernel='scatter' or 'dense'")
        super().__init__(n, m, device, dtype)
        ckernel.library()  # build or load now, so that a missing compiler is reported here
        self._scatter_kernel = None

    @property
    def _scatter(self) -> _ScatterKernel:
        if self._scatter_kernel is None:
            self._scatter_kernel = _ScatterKernel(self.n, self.m, self.device, self.dtype)
        return self._scatter_kernel

    @property
    def g0(self) -> torch.Tensor:
        return self._scatter.g0

    @property
    def g1(self) -> torch.Tensor:
        return self._scatter.g1

    def track(self, a, b, vmax, vmin) -> None:
        self._scatter.track(a, b, vmax, vmin)

    def forward(self, a, b, c, w, vmax, vmin) -> torch.Tensor:
        return self._scatter.forward(a, b, c, w, vmax, vmin)

    def backprop(self, a, b, c, w, coef, ncy, vmax, vmin) -> torch.Tensor:
        return self._scatter.backprop(a, b, c, w, coef, ncy, vmax, vmin)

    def gd_step(self, nets: _Nets, coef, ncy, vmax, vmin) -> None:
        ckernel.gd_steps(nets.a, nets.b, nets.c, nets.w, coef, ncy, vmax, vmin, 1)

    def gd_steps(self, nets: _Nets, coef, ncy, vmax, vmin, steps: int | None = None) -> None:
        ckernel.gd_steps(nets.a, nets.b, nets.c, nets.w, coef, ncy, vmax, vmin, steps)


def _resolve_kernel(kernel: str, device: torch.device, dtype: torch.dtype = torch.float64) -> str:
    if kernel == "auto":
        if device.type == "cuda":
            return "dense"
        return "c" if dtype == torch.float64 and ckernel.available() else "scatter"
    return kernel


def _make_kernel(kernel: str, n: int, m: int, device, dtype) -> _Kernel:
    if kernel == "c":
        return _CKernel(n, m, device, dtype)
    if kernel == "scatter":
        if dtype != torch.float64:
            # The rounding trick behind the class index needs the float64 mantissa.
            raise ValueError(f"the scatter kernel needs float64, got {dtype}; use kernel='dense'")
        return _ScatterKernel(n, m, device, dtype)
    return _DenseKernel(n, m, device, dtype)


def _gd_update(nets: _Nets, kern: _Kernel, rsum: torch.Tensor) -> None:
    """θ ← θ − (gradients already scaled by h through coef), all at the old parameters."""
    a, b, w = nets.a, nets.b, nets.w
    new_w = torch.addcmul(w, a, kern.g1, value=-1.0, out=kern.spare)
    new_w.addcmul_(b, kern.g0, value=-1.0)
    a.addcmul_(w, kern.g1, value=-1.0)
    b.addcmul_(w, kern.g0, value=-1.0)
    nets.c.sub_(rsum)
    nets.w, kern.spare = new_w, w


@dataclass
class _Nets:
    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    w: torch.Tensor


class GDStepper:
    """Full-batch GD on P nets in place, with the workspace and update code of ``run_chunk``.

    ``step(n)`` runs n steps without host synchronisation; ``max_kink`` is the running max of
    |b/a| over the steps and neurons so far (including the current parameters).
    """

    def __init__(self, a, b, c, w, weights, h, y, kernel: str = "auto"):
        name = _resolve_kernel(kernel, a.device, a.dtype)
        self.kernel = name
        self.nets = _Nets(a.clone(), b.clone(), c.clone(), w.clone())
        self._kern = _make_kernel(name, a.shape[0], a.shape[1], a.device, a.dtype)
        self._coef = weights * h.unsqueeze(1)
        self._ncy = -self._coef * y
        self._hi = torch.zeros_like(c)
        self._lo = torch.zeros_like(c)

    def step(self, n: int = 1) -> None:
        if n > 0:
            self._kern.gd_steps(self.nets, self._coef, self._ncy, self._hi, self._lo, n)

    @property
    def params(self):
        return self.nets.a, self.nets.b, self.nets.c, self.nets.w

    @property
    def max_kink(self) -> torch.Tensor:
        self._kern.track(self.nets.a, self.nets.b, self._hi, self._lo)
        return _max_kink(self._hi, self._lo)


def train_gd(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, w: torch.Tensor, weights: torch.Tensor,
             h: torch.Tensor, y: torch.Tensor, steps: int = 1, kernel: str = "auto"):
    """``steps`` simultaneous GD steps with per-net step sizes h (P,) on ½Σp̂(f − y)².

    Returns new tensors (a, b, c, w, max_kink), max_kink (P,) being the max of |b/a| over the
    steps and neurons, as in ``run_chunk``.
    """
    stepper = GDStepper(a, b, c, w, weights, h, y, kernel)
    stepper.step(steps)
    return (*stepper.params, stepper.max_kink)


def gd_step(a, b, c, w, weights, h, y, kernel: str = "auto"):
    """One GD step (see ``train_gd``); returns new (a, b, c, w)."""
    return train_gd(a, b, c, w, weights, h, y, 1, kernel)[:4]


def kernel_output(a, b, c, w, kernel: str = "auto") -> torch.Tensor:
    """f at the six POINTS through the vectorised kernel, (P, 6)."""
    name = _resolve_kernel(kernel, a.device, a.dtype)
    kern = _make_kernel(name, a.shape[0], a.shape[1], a.device, a.dtype)
    hi = torch.full_like(c, -math.inf)
    lo = torch.full_like(c, math.inf)
    return kern.forward(a, b, c, w, hi, lo).clone()


def gradients(a, b, c, w, weights, y, kernel: str = "auto"):
    """(∂a, ∂b, ∂c, ∂w) of ½Σp̂(f − y)² through the vectorised kernel."""
    name = _resolve_kernel(kernel, a.device, a.dtype)
    kern = _make_kernel(name, a.shape[0], a.shape[1], a.device, a.dtype)
    hi = torch.full_like(c, -math.inf)
    lo = torch.full_like(c, math.inf)
    rsum = kern.backprop(a, b, c, w, weights, -weights * y, hi, lo)
    return w * kern.g1, w * kern.g0, rsum.clone(), a * kern.g1 + b * kern.g0


# ---------------------------------------------------------------------------------------------
# Chunk state, results


_LIVE_FIELDS = ("ids", "a", "b", "c", "w", "h", "weights", "val_weights", "hi", "lo",
                "best_val", "wait", "certified")
_ADAM_FIELDS = ("m_a", "m_b", "m_c", "m_w", "v_a", "v_b", "v_c", "v_w")
_GLOBAL_FIELDS = ("status", "stop_check", "max_kink", "step_size", "certified_check",
                  "crossed_after_certified")


@dataclass
class ChunkState:
    """Everything needed to continue a chunk after ``checks_done`` checks, bit for bit.

    Live tensors cover the nets still training (``ids`` maps them to 0..n_runs−1); global arrays
    cover all nets. ``to_dict`` gives CPU tensors and plain values, suitable for ``torch.save``.
    """

    config: dict
    seed: int
    n_runs: int
    width: int
    offset: float
    checks_done: int
    generator_state: torch.Tensor
    live: dict[str, torch.Tensor]
    adam: dict[str, torch.Tensor]
    totals: dict[str, torch.Tensor]

    def to_dict(self) -> dict:
        out = {
            "config": dict(self.config), "seed": self.seed, "n_runs": self.n_runs, "width": self.width,
            "offset": self.offset, "checks_done": self.checks_done,
            "generator_state": self.generator_state.detach().cpu().clone(),
        }
        for group in ("live", "adam", "totals"):
            for key, value in getattr(self, group).items():
                out[f"{group}.{key}"] = value.detach().cpu().clone()
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> ChunkState:
        groups = {"live": {}, "adam": {}, "totals": {}}
        for key, value in data.items():
            if "." in key:
                group, name = key.split(".", 1)
                if group not in groups:
                    raise ValueError(f"unknown ChunkState entry {key!r}")
                groups[group][name] = value
        missing = [f for f in _LIVE_FIELDS if f not in groups["live"]]
        missing += [f for f in _GLOBAL_FIELDS if f not in groups["totals"]]
        if missing:
            raise ValueError(f"ChunkState dict lacks {missing}; was it written by ChunkState.to_dict?")
        return cls(config=dict(data["config"]), seed=int(data["seed"]), n_runs=int(data["n_runs"]),
                   width=int(data["width"]), offset=float(data["offset"]),
                   checks_done=int(data["checks_done"]), generator_state=data["generator_state"],
                   **groups)


@dataclass
class ChunkResult:
    """Small summary of a finished (or max_checks-limited) chunk."""

    config: dict
    seed: int
    n_runs: int
    width: int
    offset: float
    device: str
    dtype: str
    kernel: str
    checks_run: int
    counts: dict[str, int]
    stop_histogram: dict[str, list[int]]  # [k] = nets of that status stopped at check k
    status: np.ndarray  # (n_runs,) int8, Status codes
    stop_check: np.ndarray  # (n_runs,) int32
    max_kink: np.ndarray  # (n_runs,) float64: max over steps and neurons of |b/a|
    step_size: np.ndarray  # (n_runs,) float64
    n_certified: int = 0  # testing=True: nets certified at some check
    certified_then_crossed: int = 0  # testing=True: of those, how many crossed later

    def crossing_probability(self, z: float = 1.959963984540054) -> tuple[float, float, float]:
        return estimate_crossing_probability(self.counts, z)

    def to_dict(self) -> dict:
        """JSON-ready form (numpy arrays as lists)."""
        out = dataclasses.asdict(self)
        for key in ("status", "stop_check", "max_kink", "step_size"):
            out[key] = getattr(self, key).tolist()
        p, lo, hi = self.crossing_probability()
        out["p_cross"] = {"estimate": p, "wilson_low": lo, "wilson_high": hi}
        return out


# ---------------------------------------------------------------------------------------------
# Initial state


def sample_frequencies(rng: np.random.Generator, n_runs: int, n_samples: int) -> np.ndarray:
    """p̂ = Multinomial(n_samples, uniform over 6 points)/n_samples, (n_runs, 6)."""
    return rng.multinomial(n_samples, [1.0 / 6.0] * 6, size=n_runs) / float(n_samples)


def _initial_state(config: MCConfig, seed: int, n_runs: int, width: int, offset: float,
                   device: torch.device, dtype: torch.dtype) -> ChunkState:
    rng = np.random.default_rng(seed)
    n_samples = width * width
    weights = sample_frequencies(rng, n_runs, n_samples)
    val_weights = sample_frequencies(rng, n_runs, n_samples)
    var_a, var_w = 2.0, 2.0 / width
    if config.swapped_init:
        var_a, var_w = var_w, var_a
    a = math.sqrt(var_a) * rng.standard_normal((n_runs, width))
    w = math.sqrt(var_w) * rng.standard_normal((n_runs, width))
    torch_seed = int(rng.integers(0, 2**62))

    as_t = lambda v: torch.as_tensor(v, device=device, dtype=dtype)  # noqa: E731
    a_t, w_t = as_t(a), as_t(w)
    b_t = torch.zeros_like(a_t)
    c_t = torch.zeros(n_runs, device=device, dtype=dtype)
    p_t, pv_t = as_t(weights), as_t(val_weights)
    if config.step_size == "small":
        h = torch.full((n_runs,), config.small_step / width, device=device, dtype=dtype)
    else:
        h = crit.large_step_sizes(a_t, b_t, w_t, p_t)

    gen = torch.Generator(device=device)
    gen.manual_seed(torch_seed)
    live = {
        "ids": torch.arange(n_runs, device=device),
        "a": a_t, "b": b_t, "c": c_t, "w": w_t, "h": h, "weights": p_t, "val_weights": pv_t,
        "hi": torch.zeros(n_runs, device=device, dtype=dtype),  # max and min over steps of the kinks
        "lo": torch.zeros(n_runs, device=device, dtype=dtype),
        "best_val": torch.full((n_runs,), math.inf, device=device, dtype=dtype),
        "wait": torch.zeros(n_runs, device=device, dtype=torch.int64),
        "certified": torch.zeros(n_runs, device=device, dtype=torch.bool),
    }
    adam = {}
    if config.optimizer == "adam":
        for key in _ADAM_FIELDS:
            src = c_t if key.endswith("_c") else a_t
            adam[key] = torch.zeros_like(src)
    totals = {
        "status": torch.full((n_runs,), int(Status.UNFINISHED), dtype=torch.int8),
        "stop_check": torch.full((n_runs,), -1, dtype=torch.int32),
        "max_kink": torch.zeros(n_runs, dtype=torch.float64),
        "step_size": h.detach().to("cpu", torch.float64).clone(),
        "certified_check": torch.full((n_runs,), -1, dtype=torch.int32),
        "crossed_after_certified": torch.zeros(n_runs, dtype=torch.bool),
    }
    return ChunkState(config=config.to_dict(), seed=int(seed), n_runs=int(n_runs), width=int(width),
                      offset=float(offset), checks_done=0, generator_state=gen.get_state(),
                      live=live, adam=adam, totals=totals)


def _check_state(state: ChunkState, config: MCConfig, seed, n_runs, width, offset) -> None:
    mine = {"config": config.to_dict(), "seed": int(seed), "n_runs": int(n_runs), "width": int(width),
            "offset": float(offset)}
    theirs = {"config": state.config, "seed": state.seed, "n_runs": state.n_runs, "width": state.width,
              "offset": state.offset}
    bad = [k for k in mine if mine[k] != theirs[k]]
    if bad:
        raise ValueError(f"cannot resume: the saved chunk state differs in {bad} "
                         f"(saved {[theirs[k] for k in bad]}, asked {[mine[k] for k in bad]}); "
                         "delete the checkpoint or run with the matching settings")


# ---------------------------------------------------------------------------------------------
# Training loop


def _max_kink(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    return torch.maximum(hi, -lo)


# Minibatches are drawn for a block of steps at once (one multinomial and one scatter instead of a
# handful of small ops per step); a block holds at most this many draws.
_MINIBATCH_DRAWS = 1 << 21


def minibatch_frequencies(weights: torch.Tensor, size: int, steps: int, gen: torch.Generator,
                     scale: torch.Tensor | None = None):
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
        counts.scatter_add_(1, draws.add_(offset), torch.ones_like(draws, dtype=weights.dtype))
        freq = counts.div_(size).view(n, k, points)
        if scale is not None:
            freq.mul_(scale.view(n, 1, 1))
        yield freq


def _adam_update(nets: _Nets, kern: _Kernel, rsum: torch.Tensor, moments: dict, h: torch.Tensor,
                 t: int) -> None:
    beta1, beta2 = ADAM_BETAS
    grads = {
        "a": nets.w * kern.g1, "b": nets.w * kern.g0, "c": rsum,
        "w": nets.a * kern.g1 + nets.b * kern.g0,
    }
    corr1 = 1.0 - beta1**t
    corr2 = 1.0 - beta2**t
    for key, g in grads.items():
        m, v = moments[f"m_{key}"], moments[f"v_{key}"]
        m.mul_(beta1).add_(g, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = (v / corr2).sqrt_().add_(ADAM_EPS)
        lr = h if key == "c" else h.unsqueeze(1)
        getattr(nets, key).sub_(m / corr1 / denom * lr)


def run_chunk(config: MCConfig, seed: int, n_runs: int, width: int, offset: float,
              device="cpu", dtype: torch.dtype = torch.float64,
              progress: Callable[[dict], None] | None = None, state: ChunkState | Mapping | None = None,
              checkpoint_every: int | None = None,
              checkpoint: Callable[[ChunkState], None] | None = None) -> ChunkResult:
    """Train ``n_runs`` nets of width ``width`` on offset Δ = ``offset`` and classify each.

    ``progress(info)`` is called after every check with {"check", "live", "counts"}.
    ``checkpoint(state)`` is called every ``checkpoint_every`` checks (not after the last); passing
    that state (or its ``to_dict()``) back as ``state`` continues the chunk bit-identically.
    """
    if isinstance(config, Mapping):
        config = MCConfig.from_dict(config)
    if n_runs < 1 or width < 1:
        raise ValueError(f"need n_runs >= 1 and width >= 1, got n_runs={n_runs}, width={width}")
    device = torch.device(device)
    kernel_name = _resolve_kernel(config.kernel, device, dtype)
    if state is None:
        state = _initial_state(config, seed, n_runs, width, offset, device, dtype)
    else:
        if isinstance(state, Mapping):
            state = ChunkState.from_dict(state)
        _check_state(state, config, seed, n_runs, width, offset)
        state.live = {k: v.to(device) for k, v in state.live.items()}
        state.live.update({k: state.live[k].to(dtype) for k in _LIVE_FIELDS
                           if state.live[k].is_floating_point()})
        state.adam = {k: v.to(device=device, dtype=dtype) for k, v in state.adam.items()}
        state.totals = {k: v.clone() for k, v in state.totals.items()}

    live, adam, totals = state.live, state.adam, state.totals
    gen = torch.Generator(device=device)
    gen.set_state(state.generator_state.cpu())
    y = crit.labels(offset, device, dtype)
    stochastic = config.optimizer in ("sgd", "adam")
    K = config.steps_per_check
    checks = state.checks_done

    def active_count() -> int:
        return int(live["ids"].numel())

    kern, kern_n = None, -1
    while checks < config.max_checks and active_count() > 0:
        n = int(live["ids"].numel())
        if kern_n != n:
            kern, kern_n = _make_kernel(kernel_name, n, width, device, dtype), n
        nets = _Nets(live["a"], live["b"], live["c"], live["w"])
        h, p = live["h"], live["weights"]
        coef = p * h.unsqueeze(1)
        ncy = -coef * y
        if config.optimizer == "adam":  # Adam takes its step size in the update
            batches = minibatch_frequencies(p, config.minibatch_size, K, gen)
            for step in range(K):
                coef = next(batches)
                ncy = torch.mul(coef, y).neg_()
                rsum = kern.backprop(nets.a, nets.b, nets.c, nets.w, coef, ncy, live["hi"], live["lo"])
                _adam_update(nets, kern, rsum, adam, h, checks * K + step + 1)
        elif stochastic:  # SGD: the step size goes into the coefficients; blocks of steps at once
            for coef in _minibatch_blocks(p, config.minibatch_size, K, gen, h):
                kern.gd_steps(nets, coef, torch.mul(coef, y).neg_(), live["hi"], live["lo"])
        else:
            kern.gd_steps(nets, coef, ncy, live["hi"], live["lo"], K)
        # The kernel tracks the kinks before each step; fold in the parameters after the last one.
        kern.track(nets.a, nets.b, live["hi"], live["lo"])
        live.update(a=nets.a, b=nets.b, c=nets.c, w=nets.w)
        checks += 1
        done = _evaluate_check(config, checks, live, totals, kern, y)
        _compact(live, adam, done)
        if progress is not None:
            progress({"check": checks, "live": int(live["ids"].numel()), "counts": _counts(totals)})
        if (checkpoint is not None and checkpoint_every and checks % checkpoint_every == 0
                and checks < config.max_checks and active_count() > 0):
            checkpoint(ChunkState(config=config.to_dict(), seed=int(seed), n_runs=n_runs, width=width,
                                  offset=float(offset), checks_done=checks,
                                  generator_state=gen.get_state().clone(),
                                  live={k: v.clone() for k, v in live.items()},
                                  adam={k: v.clone() for k, v in adam.items()},
                                  totals={k: v.clone() for k, v in totals.items()}))

    # Whatever still trains has hit max_checks (in testing mode: or was certified earlier).
    ids = live["ids"].cpu()
    still = totals["status"][ids] == int(Status.UNFINISHED)
    totals["stop_check"][ids[still]] = checks
    totals["max_kink"][ids] = _max_kink(live["hi"], live["lo"]).to("cpu", torch.float64)

    return _result(config, state, totals, checks, device, dtype, kernel_name)


def _evaluate_check(config: MCConfig, check: int, live: dict, totals: dict, kern: _Kernel,
                    y: torch.Tensor) -> torch.Tensor:
    """Decide statuses of the live nets after ``check`` checks and record them in ``totals``.

    Returns the (CPU, bool) mask of live nets that stop training now.
    """
    n = live["ids"].numel()
    device = live["a"].device
    mk = _max_kink(live["hi"], live["lo"])
    # NaN (diverged) compares False, so it is counted as crossed.
    crossed = ~(mk < 1.0)
    status = torch.full((n,), int(Status.UNFINISHED), device=device, dtype=torch.int64)
    stopped = crossed.clone()

    if config.early_stopping:
        # Fresh extremes: the kinks at these parameters are already recorded.
        f = kern.forward(live["a"], live["b"], live["c"], live["w"], live["hi"].clone(),
                         live["lo"].clone())
        val = (live["val_weights"] * (y - f) ** 2).sum(1)
        improved = val < live["best_val"] - config.min_delta
        live["best_val"] = torch.where(improved, val, live["best_val"])
        live["wait"] = torch.where(improved, 0, live["wait"] + 1)
        es = (live["wait"] >= config.patience) & ~stopped
        status[es] = int(Status.EARLY_STOPPED)
        stopped |= es

    if config.sufficient_criterion:
        candidates = ~stopped & ~live["certified"]
        sel = candidates.nonzero().squeeze(1)
        if sel.numel() > 0:
            res = crit.sufficient_criterion(
                live["a"][sel], live["b"][sel], live["c"][sel], live["w"][sel], live["h"][sel],
                live["weights"][sel], y, psi_bound=config.psi_bound)
            sub = torch.full((sel.numel(),), int(Status.UNFINISHED), device=device, dtype=torch.int64)
            sub[res.certified] = int(Status.LOCALLY_CONVERGED)
            sub[res.a_degenerate] = int(Status.A_DEGENERATE)
            sub[res.x_degenerate] = int(Status.X_DEGENERATE)
            status[sel] = sub

    status[crossed] = int(Status.CROSSED)

    ids = live["ids"].cpu()
    status_cpu = status.cpu()
    unfinished = int(Status.UNFINISHED)
    if config.testing:
        # Certified nets keep training and keep their status unless they cross later, which
        # would be a failure of the criterion.
        lc = int(Status.LOCALLY_CONVERGED)
        was_cert = live["certified"].cpu()
        violated = was_cert & crossed.cpu()
        totals["crossed_after_certified"][ids[violated]] = True
        status_cpu = torch.where(was_cert & ~violated, lc, status_cpu)
        new_cert = (status_cpu == lc) & ~was_cert
        totals["certified_check"][ids[new_cert]] = check
        live["certified"] = live["certified"] | new_cert.to(device)
        decided = (status_cpu != unfinished) & ~(was_cert & ~violated)
        done = (status_cpu != unfinished) & (status_cpu != lc)
    else:
        decided = done = status_cpu != unfinished
    totals["status"][ids] = status_cpu.to(torch.int8)
    totals["stop_check"][ids[decided]] = check
    totals["max_kink"][ids[done]] = mk.cpu().to(torch.float64)[done]
    return done


def _compact(live: dict, adam: dict, done: torch.Tensor) -> None:
    """Drop finished nets from the live tensors (index map ``ids`` keeps original numbering)."""
    if not bool(done.any()):
        return
    keep = (~done).nonzero().squeeze(1).to(live["a"].device)
    for key in list(live):
        live[key] = live[key].index_select(0, keep)
    for key in list(adam):
        adam[key] = adam[key].index_select(0, keep)


def _counts(totals: dict) -> dict[str, int]:
    codes = totals["status"].to(torch.int64)
    binc = torch.bincount(codes, minlength=len(Status))
    return {s.name: int(binc[int(s)]) for s in Status}


def _result(config, state, totals, checks, device, dtype, kernel_name) -> ChunkResult:
    status = totals["status"].numpy().astype(np.int8)
    stop = totals["stop_check"].numpy().astype(np.int32)
    hist = {}
    for s in Status:
        sel = stop[status == int(s)]
        hist[s.name] = np.bincount(sel.clip(0), minlength=config.max_checks + 1).tolist()
    cert = totals["certified_check"].numpy() >= 0
    return ChunkResult(
        config=config.to_dict(), seed=state.seed, n_runs=state.n_runs, width=state.width,
        offset=state.offset, device=str(device), dtype=str(dtype).replace("torch.", ""),
        kernel=kernel_name, checks_run=checks, counts=_counts(totals), stop_histogram=hist,
        status=status, stop_check=stop, max_kink=totals["max_kink"].numpy().copy(),
        step_size=totals["step_size"].numpy().copy(),
        n_certified=int(cert.sum()),
        certified_then_crossed=int(totals["crossed_after_certified"].numpy().sum()),
    )


__all__ = [
    "ADAM_BETAS", "ADAM_EPS", "ChunkResult", "ChunkState", "GDStepper", "KERNELS", "LABELS", "MCConfig",
    "POINTS", "Status", "estimate_crossing_probability", "gd_step", "gradients", "kernel_output", "loss",
    "network_output", "run_chunk", "sample_frequencies", "train_gd", "wilson_interval",
]
