"""The scatter kernel of the 1-D Monte Carlo (``kernel="scatter"``): per-class sums.

Let k = #{j: x_j < ξ} ∈ 0…6 (points left of the kink). A neuron with a < 0 is active on
the k leftmost points, one with a > 0 on the 6 − k rightmost. Its bin in a 16-wide row
is k (a < 0) or 8 + k (a > 0). With C the running sum over the bins of the per-class
sums of (w a, w b):

    f_j = c + x_j (C_A[8 + j] − C_A[j]) + (C_B[8 + j] − C_B[j]),

because C[8 + j] − C[j] = Σ_{a>0, k ≤ j} + (Σ_{a<0} − Σ_{a<0, k ≤ j}). Backwards, with
R_k = Σ_{j<k} r_j, a neuron with a < 0 in class k gets R_k and one with a > 0 gets
R_6 − R_k. k is computed without a search: softshrink(ξ, ½) squeezes the gap (−1, 1) to
(−½, ½) and moves every other point by ½ towards 0, so
k = 3 + round(clamp(softshrink(ξ, ½), −3, 3)).

The C kernel (csrc/mc1d_step.c, see c_kernel.py) runs these steps, with the same
operations in the same order, for one net at a time.
"""

from __future__ import annotations

import torch

from weightspace.relu.mc1d.kernel import _fold_kinks, _Kernel, _Nets, _rows

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
        self.hist = buf["hist"][
            :rows
        ]  # per-class sums, then (in place) their running sums
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
            "q": empty(rb, m),
            "g0": empty(rb, m),
            "g1": empty(rb, m),
            "ext": empty(rb),
            "f": empty(rb, 6),
            "src": empty(rb, m, 2),
            "hist": empty(rb, 16, dt=cdt),
            "fparts": empty(rb, 6, dt=cdt),
            "resid": empty(2, rb, 6),
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
            t = self._full[name] = torch.empty(
                *shape, device=self.device, dtype=self.dtype
            )
        return t

    def _split(self, *tensors):
        if (
            self.rows >= self.n
        ):  # one block: skip the views (each op costs microseconds)
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

    def _backprop_block(
        self, ws, a, b, c, w, coef, ncy, vmax, vmin, g1, g0
    ) -> torch.Tensor:
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
        for a_k, b_k, c_k, w_k, hi_k, lo_k, f_k in self._split(
            a, b, c.unsqueeze(1), w, vmax, vmin, f
        ):
            self._forward_block(
                self._workspace(a_k.shape[0]), a_k, b_k, c_k, w_k, hi_k, lo_k, f_k
            )
        return f

    def backprop(self, a, b, c, w, coef, ncy, vmax, vmin) -> torch.Tensor:
        n = self.n
        coef, ncy = _rows(coef, n), _rows(ncy, n)
        rsum = self._out("rsum", n)
        for (
            a_k,
            b_k,
            c_k,
            w_k,
            coef_k,
            ncy_k,
            hi_k,
            lo_k,
            g1_k,
            g0_k,
            rsum_k,
        ) in self._split(
            a, b, c.unsqueeze(1), w, coef, ncy, vmax, vmin, self.g1, self.g0, rsum
        ):
            ws = self._workspace(a_k.shape[0])
            rsum_k.copy_(
                self._backprop_block(
                    ws, a_k, b_k, c_k, w_k, coef_k, ncy_k, hi_k, lo_k, g1_k, g0_k
                )
            )
        return rsum

    def gd_step(self, nets: _Nets, coef, ncy, vmax, vmin) -> None:
        """``backprop`` and ``_gd_update`` fused block by block; same operations, same results."""
        n = self.n
        coef, ncy = _rows(coef, n), _rows(ncy, n)
        new_w = self.spare
        for a, b, c, c_col, w, coef_k, ncy_k, hi_k, lo_k, nw in self._split(
            nets.a,
            nets.b,
            nets.c,
            nets.c.unsqueeze(1),
            nets.w,
            coef,
            ncy,
            vmax,
            vmin,
            new_w,
        ):
            ws = self._workspace(a.shape[0])
            rsum = self._backprop_block(
                ws, a, b, c_col, w, coef_k, ncy_k, hi_k, lo_k, ws.g1, ws.g0
            )
            torch.addcmul(w, a, ws.g1, value=-1.0, out=nw).addcmul_(
                b, ws.g0, value=-1.0
            )
            a.addcmul_(w, ws.g1, value=-1.0)
            b.addcmul_(w, ws.g0, value=-1.0)
            c.sub_(rsum)
        self.spare, nets.w = nets.w, new_w
