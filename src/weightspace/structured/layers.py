"""Trainable layers with structured weight matrices: y = W̃u + b computed from the factors.

SSSLayer evaluates the SSS realisation (see sss.py) without forming W̃. Stages are padded to equal
size (m = max m_k inputs, p = max p_k outputs, d states) and stacked, so the D_k, B_k, F_k products of
all stages are one bmm and the C_k, G_k products two more. Only the d-dimensional state recursions are
sequential: causal and anticausal run side by side as one scan, either directly (K-1 small products;
training and larger batches) or, for small inference batches where each product would be pure call
overhead, as a two-level chunked scan whose transfer operators depend on the transitions only and are
cached (three batched products per call). The backward of the scan is its adjoint recursion.

Padding entries start at zero and get exactly zero gradients (they only ever multiply zero inputs or
zero states, or feed discarded outputs), so gradient-based training keeps them at zero.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from weightspace.structured.approximation import Approximation, as_matrix
from weightspace.structured.low_rank import LowRankFactors, approximate_low_rank
from weightspace.structured.sss import SSSRealisation, approximate_sss, sss_param_count


def _bias_tensor(bias, out_features: int, dtype, device) -> torch.Tensor | None:
    if bias is None or bias is False:
        return None
    if bias is True:
        return torch.zeros(out_features, dtype=dtype, device=device)
    t = torch.as_tensor(np.asarray(bias.detach().cpu() if hasattr(bias, "detach") else bias),
                        dtype=dtype, device=device).reshape(-1).clone()
    if t.numel() != out_features:
        raise ValueError(f"bias has {t.numel()} entries, expected {out_features}")
    return t


def _index_with_padding(sizes: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather index (K·width,) into a vector padded with one trailing zero, and its inverse."""
    total = int(sum(sizes))
    gather = np.full((len(sizes), width), total, dtype=np.int64)  # `total` points at the zero pad
    scatter = np.empty(total, dtype=np.int64)
    start = 0
    for k, size in enumerate(sizes):
        gather[k, :size] = np.arange(start, start + size)
        scatter[start:start + size] = k * width + np.arange(size)
        start += size
    return torch.from_numpy(gather.reshape(-1)), torch.from_numpy(scatter)


# ---------------------------------------------------------------------------------------------
# The state scan: w_0 = 0, w_{t+1} = w_t T_t + V_t for t = 0..n-1, with row-vector states w_t of shape
# (2, N, d) (causal and anticausal direction side by side) and transitions T_t of shape (2, d, d).
# These helpers run without autograd; _SSSStateScan supplies the backward.


def _direct_scan(v: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """n sequential products; the fewest flops, best once the batch is large enough to fill them."""
    n, _, N, d = v.shape
    vs, ts = v.unbind(0), trans.unbind(0)
    states = [v.new_zeros(2, N, d)]
    for t in range(n):
        states.append(torch.baddbmm(vs[t], states[-1], ts[t]))
    return torch.stack(states)


def _chunk_transfer(trans: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Transfer operators of chunks of c steps (they depend on the transitions only).

    For chunk j (steps jc..jc+c-1) with start state s_j and inputs V_{jc+τ}:
        w_{jc+i} = s_j P_{j,i} + Σ_{τ<i} V_{jc+τ} T_{jc+τ+1}⋯T_{jc+i-1},   P_{j,i} = T_{jc}⋯T_{jc+i-1}.
    Returns psi (q·2, c·d, c·d), block (τ, i-1) = T_{jc+τ+1}⋯T_{jc+i-1} (zero for τ >= i), and
    pcat (q·2, d, c·d) = [P_{j,1} … P_{j,c}]; batch index = 2·chunk + direction.
    Built by running the c-step recursion on identity inputs (d rows per input block) with the
    products P as d extra rows, one batched product per step.
    """
    n, _, d, _ = trans.shape
    c = chunk
    q = -(-n // c)
    pad = q * c - n
    tt = trans if not pad else torch.cat([trans, trans.new_zeros(pad, 2, d, d)])
    steps = tt.view(q, c, 2, d, d).transpose(0, 1)  # (c, q, 2, d, d)
    x = trans.new_zeros(c, q, 2, c + 1, d, d)  # row blocks 0..c-1: unit inputs; block c: P
    eye = torch.eye(d, dtype=trans.dtype, device=trans.device)
    torch.diagonal(x[:, :, :, :c], dim1=0, dim2=3).copy_(eye[None, None, :, :, None].expand(q, 2, d, d, c))
    x[0, :, :, c].copy_(steps[0])
    xs = x.view(c, q * 2, (c + 1) * d, d).unbind(0)
    ts = steps.reshape(c, q * 2, d, d).unbind(0)
    for i in range(1, c):
        xs[i].baddbmm_(xs[i - 1], ts[i])
    both = x.permute(1, 2, 3, 4, 0, 5).reshape(q * 2, (c + 1) * d, c * d)
    return both[:, :c * d].contiguous(), both[:, c * d:].contiguous()


def _chunk_operators(trans: torch.Tensor, chunk: int) -> tuple:
    """psi and pcat of _chunk_transfer, plus psi2 (2, (q-1)·d, (q-1)·d) for the chunk-start states.

    The start states follow the same kind of recursion one level up, s_0 = 0,
    s_{j+1} = s_j P_{j,c} + L_{j,c} (L = local states), so psi2 is the transfer operator of one chunk
    of q-1 steps with transitions P_{j,c}: [s_1 … s_{q-1}] = [L_{0,c} … L_{q-2,c}] psi2.
    """
    psi, pcat = _chunk_transfer(trans, chunk)
    n, _, d, _ = trans.shape
    q = -(-n // chunk)
    if q == 1:
        return psi, pcat, None
    p_last = pcat.view(q, 2, d, chunk, d)[:q - 1, :, :, chunk - 1]
    psi2, _ = _chunk_transfer(p_last.contiguous(), q - 1)
    return psi, pcat, psi2


def _chunked_scan(v: torch.Tensor, ops: tuple, chunk: int) -> torch.Tensor:
    """Scan by three batched products with the precomputed operators: local states of all chunks
    (psi), chunk-start states (psi2), and the start states carried through each chunk (pcat)."""
    psi, pcat, psi2 = ops
    n, _, N, d = v.shape
    c = chunk
    q = -(-n // c)
    pad = q * c - n
    vt = v if not pad else torch.cat([v, v.new_zeros(pad, 2, N, d)])
    vch = vt.view(q, c, 2, N, d).permute(0, 2, 3, 1, 4).reshape(q * 2, N, c * d)
    states = torch.bmm(vch, psi)  # (q·2, N, c·d): w_{jc+i} - s_j P_{j,i}, i = 1..c
    if q > 1:
        ends = states.view(q, 2, N, c, d)[:q - 1, :, :, c - 1].permute(1, 2, 0, 3).reshape(2, N, (q - 1) * d)
        starts = torch.bmm(ends, psi2).view(2, N, q - 1, d).permute(2, 0, 1, 3)  # s_1..s_{q-1}
        starts = torch.cat([v.new_zeros(1, 2, N, d), starts]).view(q * 2, N, d)
        states = torch.baddbmm(states, starts, pcat)
    states = states.view(q, 2, N, c, d).permute(0, 3, 1, 2, 4).reshape(q * c, 2, N, d)
    return torch.cat([v.new_zeros(1, 2, N, d), states[:n]])


def _scan_states(v: torch.Tensor, trans: torch.Tensor, chunk: int, ops=None) -> torch.Tensor:
    """States w_0..w_n (n + 1, 2, N, d) of the recursion; chunk >= n runs it directly."""
    n = v.shape[0]
    if n == 0:
        return v.new_zeros(1, *v.shape[1:])
    if chunk >= n:
        return _direct_scan(v, trans)
    return _chunked_scan(v, ops if ops is not None else _chunk_operators(trans, chunk), chunk)


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64):
        return bool(np.array_equal(a.numpy(), b.numpy()))  # several times cheaper than torch.equal here
    return torch.equal(a, b)


def _default_chunk(n: int) -> int:
    # psi costs ∝ c and the start-state operator ∝ (n/c)²: balance them.
    return max(2, math.isqrt(n))


class _SSSStateScan(torch.autograd.Function):
    """Stage states of an SSS layer from the input projections h = [D u | B u | F u] (K, N, p + 2d).

    Returns (X, Z), each (K, N, d): X[k] = x_k, the causal state entering stage k, and Z[k] = z_{k+1},
    the anticausal state entering it from the right. trans (K-1, 2, d, d) holds [A_tᵀ, E_{K-1-t}ᵀ]:
    as one scan over time t = 0..K-2, causal stage t runs together with anticausal stage K-1-t.
    The backward is the adjoint recursion, run by the same scan. `ops`: precomputed chunk
    operators for `chunk` (or None).
    """

    @staticmethod
    def states(h, trans, p: int, d: int, chunk: int, ops, out=None):
        """The forward computation itself (also called directly when no gradient is needed);
        `out`: optional (X, Z) buffers for the direct recursion."""
        K, N = h.shape[0], h.shape[1]
        n = K - 1
        if chunk >= n and (N >= 16 or out is not None):
            # Direct recursion, each direction written in place into its stage-ordered buffer.
            X, Z = out if out is not None else (h.new_empty(K, N, d), h.new_empty(K, N, d))
            X[0].zero_()
            Z[K - 1].zero_()
            xs, zs = X.unbind(0), Z.unbind(0)
            bu, fu = h[:, :, p:p + d].unbind(0), h[:, :, p + d:].unbind(0)
            a, e = trans[:, 0].unbind(0), trans[:, 1].unbind(0)
            for t in range(n):
                torch.addmm(bu[t], xs[t], a[t], out=xs[t + 1])  # x_{t+1} = x_t A_tᵀ + B_t u_t
                k = K - 1 - t
                torch.addmm(fu[k], zs[k], e[t], out=zs[k - 1])  # z_k = z_{k+1} E_kᵀ + F_k u_k
            return X, Z
        # Both directions in one batched product per step (small batches: fewer, costlier calls).
        v = torch.stack([h[:-1, :, p:p + d], h[1:, :, p + d:].flip(0)], dim=1)
        w = _scan_states(v, trans, chunk, ops)
        return w[:, 0].contiguous(), w[:, 1].flip(0)

    @staticmethod
    def forward(ctx, h, trans, p: int, d: int, chunk: int, ops):
        X, Z = _SSSStateScan.states(h, trans, p, d, chunk, ops)
        ctx.save_for_backward(X, Z, trans)
        ctx.meta = (p, d)
        return X, Z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gX, gZ):
        X, Z, trans = ctx.saved_tensors
        p, d = ctx.meta
        K, N, _ = X.shape
        n = K - 1
        g = torch.stack([gX, gZ.flip(0)], dim=1)  # dL/dw_t in time order, w_t = [x_t, z_{K-t}]
        # Adjoint: λ_n = g_n, λ_t = g_t + λ_{t+1} T_tᵀ. In reversed time s = n - t this is the same
        # recursion with inputs g_{n-s} and transitions T_{n-s}ᵀ (the first transition is unused).
        t_adj = torch.cat([trans.new_zeros(1, 2, d, d), trans[1:].flip(0)], dim=0).transpose(-1, -2)
        mu = _scan_states(g[1:].flip(0), t_adj.contiguous(), n)  # direct: no operators to build
        lam = mu[1:].flip(0)  # λ_1..λ_n = dL/dV_0..dL/dV_{n-1}
        gh = gtrans = None
        if ctx.needs_input_grad[0]:
            gh = X.new_zeros(K, N, p + 2 * d)
            gh[:-1, :, p:p + d] = lam[:, 0]
            gh[1:, :, p + d:] = lam[:, 1].flip(0)
        if ctx.needs_input_grad[1]:
            w_prev = torch.stack([X[:-1], Z.flip(0)[:-1]], dim=1)  # w_0..w_{n-1}
            gtrans = torch.matmul(w_prev.transpose(-1, -2), lam)
        return gh, gtrans, None, None, None, None


class SSSLayer(nn.Module):
    """y = W̃u + b with W̃ an SSS matrix held as its (padded, stacked) stage matrices.

    Parameters (K stages, padded sizes m = max m_k, p = max p_k, d = max state dimension):
      w_in  (K, m, p + 2d):   [D_kᵀ | B_kᵀ | F_kᵀ]   one bmm gives every input-side product
      trans (K-1, 2, d, d):   [A_tᵀ, E_{K-1-t}ᵀ]     transitions in scan order (A_{K-1}, E_0 are empty)
      w_out (K, 2d, p):       [C_kᵀ; G_kᵀ]           one bmm adds every state-to-output product
      bias  (out,) or None
    Build it with `from_realisation`, `from_approximation`, `from_dense` or `zero`.
    scan_chunk: None picks the scan schedule (see the module doc); an int forces chunks of that length.
    Inference at batch >= 16 reuses per-thread buffers for its intermediates (fresh multi-megabyte
    buffers on every call cost page faults comparable to the arithmetic); `clear_caches` frees them.
    """

    def __init__(self, dims_in, dims_out, causal_dims, anticausal_dims, *, bias: bool = True,
                 dtype: torch.dtype = torch.float32, device=None, scan_chunk: int | None = None):
        super().__init__()
        self.dims_in = tuple(int(v) for v in dims_in)
        self.dims_out = tuple(int(v) for v in dims_out)
        self.causal_dims = tuple(int(v) for v in causal_dims)
        self.anticausal_dims = tuple(int(v) for v in anticausal_dims)
        K = len(self.dims_in)
        if len(self.dims_out) != K or len(self.causal_dims) != K + 1 or len(self.anticausal_dims) != K + 1:
            raise ValueError("need K input sizes, K output sizes and K+1 causal/anticausal state dimensions")
        if self.causal_dims[0] or self.causal_dims[-1] or self.anticausal_dims[0] or self.anticausal_dims[-1]:
            raise ValueError("boundary states (before the first and after the last stage) must be empty")
        self.in_features = int(sum(self.dims_in))
        self.out_features = int(sum(self.dims_out))
        self.n_stages = K
        self.m = max(self.dims_in, default=0)
        self.p = max(self.dims_out, default=0)
        self.d = max(self.causal_dims + self.anticausal_dims)
        self.scan_chunk = scan_chunk
        kw = {"dtype": dtype, "device": device}
        m, p, d = self.m, self.p, self.d
        self.w_in = nn.Parameter(torch.zeros(K, m, p + 2 * d, **kw))
        self.trans = nn.Parameter(torch.zeros(max(K - 1, 0), 2, d, d, **kw))
        self.w_out = nn.Parameter(torch.zeros(K, 2 * d, p, **kw))
        self.bias = nn.Parameter(torch.zeros(self.out_features, **kw)) if bias else None
        self._ops_cache = None
        self._last_trans = None
        self._uniform_in = len(set(self.dims_in)) <= 1
        self._uniform_out = len(set(self.dims_out)) <= 1
        gather, _ = _index_with_padding(list(self.dims_in), m)
        _, scatter = _index_with_padding(list(self.dims_out), p)
        self.register_buffer("in_index", gather.to(device), persistent=False)
        self.register_buffer("out_index", scatter.to(device), persistent=False)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_realisation(cls, realisation: SSSRealisation, bias=None, *, dtype: torch.dtype = torch.float32,
                         device=None, scan_chunk: int | None = None) -> "SSSLayer":
        """Layer computing realisation·u + bias (bias: None/False = no bias, True = zeros, or values)."""
        R = realisation
        layer = cls(R.dims_in, R.dims_out, R.causal_dims, R.anticausal_dims,
                    bias=bias is not None and bias is not False, dtype=dtype, device=device, scan_chunk=scan_chunk)
        K, p, d = layer.n_stages, layer.p, layer.d
        w_in = np.zeros((K, layer.m, p + 2 * d))
        trans = np.zeros((max(K - 1, 0), 2, d, d))
        w_out = np.zeros((K, 2 * d, p))
        for k in range(K):
            mk, pk = R.dims_in[k], R.dims_out[k]
            w_in[k, :mk, :pk] = R.D[k].T
            w_in[k, :mk, p:p + R.B[k].shape[0]] = R.B[k].T
            w_in[k, :mk, p + d:p + d + R.F[k].shape[0]] = R.F[k].T
            w_out[k, :R.C[k].shape[1], :pk] = R.C[k].T
            w_out[k, d:d + R.G[k].shape[1], :pk] = R.G[k].T
            if k < K - 1:  # causal step t = k
                trans[k, 0, :R.A[k].shape[1], :R.A[k].shape[0]] = R.A[k].T
            if k > 0:  # anticausal step t = K-1-k
                trans[K - 1 - k, 1, :R.E[k].shape[1], :R.E[k].shape[0]] = R.E[k].T
        with torch.no_grad():
            for name, val in (("w_in", w_in), ("trans", trans), ("w_out", w_out)):
                getattr(layer, name).copy_(torch.from_numpy(val))
            b = _bias_tensor(bias, layer.out_features, dtype, device)
            if b is not None:
                layer.bias.copy_(b)
        return layer

    @classmethod
    def from_approximation(cls, approx: Approximation, bias=None, **kw) -> "SSSLayer":
        """Layer from an SSS approximation; the zero-matrix result gives a weight-free layer (y = b)."""
        if approx.method != "SSS":
            raise ValueError(f"expected an SSS approximation, got {approx.method!r}")
        if approx.structure is None:
            return cls.zero(approx.shape[1], approx.shape[0], bias=bias, **kw)
        return cls.from_realisation(approx.structure, bias=bias, **kw)

    @classmethod
    def from_dense(cls, weight, share: float, n_stages: int, bias=None, *, esann_off_by_one: bool = False,
                   exact_count: bool = False, **kw) -> "SSSLayer":
        """Approximate W (out × in) within the share, then build the layer."""
        approx = approximate_sss(weight, share, n_stages, esann_off_by_one=esann_off_by_one,
                                 exact_count=exact_count)
        return cls.from_approximation(approx, bias=bias, **kw)

    @classmethod
    def zero(cls, in_features: int, out_features: int, bias=None, *, dtype: torch.dtype = torch.float32,
             device=None, **_) -> "SSSLayer":
        """No stages and no weight parameters: the zero matrix (plus bias)."""
        layer = cls((), (), (0,), (0,), bias=False, dtype=dtype, device=device)
        layer.in_features, layer.out_features = int(in_features), int(out_features)
        b = _bias_tensor(bias, out_features, dtype, device)
        layer.bias = nn.Parameter(b) if b is not None else None
        return layer

    # -- evaluation ----------------------------------------------------------------------------
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        lead = u.shape[:-1]
        u2 = u.reshape(-1, self.in_features)
        N = u2.shape[0]
        if self.n_stages == 0:
            y = u2.new_zeros(N, self.out_features)
            return (y + self.bias if self.bias is not None else y).reshape(*lead, self.out_features)
        K, m, p, d = self.n_stages, self.m, self.p, self.d
        grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (u2, self.w_in, self.trans, self.w_out, self.bias))
        # Inference at larger batches reuses per-thread buffers for the multi-megabyte intermediates:
        # fresh ones cost page faults that can exceed the arithmetic.
        reuse = not grad and N >= 16
        if self._uniform_in:
            us = u2.reshape(N, K, m).transpose(0, 1)
        else:
            us = F.pad(u2, (0, 1)).index_select(1, self.in_index).reshape(N, K, m).transpose(0, 1)
        # (K, N, p + 2d): D_k u_k, B_k u_k, F_k u_k for all stages at once
        h = torch.bmm(us, self.w_in, out=self._buffer("h", (K, N, p + 2 * d), u2) if reuse else None)
        if d == 0 or K == 1:
            y = h[..., :p]
        else:
            n = K - 1
            chunk, ops = self.scan_chunk, None
            if chunk is None:
                chunk = n
                if (N < 16 or h.device.type != "cpu") and n > 4:
                    # Small batches (any batch on accelerators, where every product is a kernel
                    # launch): the chunked scan with cached operators, where n sequential products
                    # would be pure call overhead; but not while the transitions keep changing
                    # (training), where rebuilding the operators costs more than it saves.
                    ops = self._chunk_ops(_default_chunk(n), only_if_settled=grad)
                    chunk = _default_chunk(n) if ops is not None else n
            elif chunk < n:
                ops = self._chunk_ops(chunk)
            c_out, g_out = self.w_out[:, :d], self.w_out[:, d:]
            if grad:
                X, Z = _SSSStateScan.apply(h, self.trans, p, d, chunk, ops)
                y = torch.baddbmm(torch.baddbmm(h[..., :p], X, c_out), Z, g_out)
            else:
                bufs = (self._buffer("x", (K, N, d), u2), self._buffer("z", (K, N, d), u2)) if reuse else None
                X, Z = _SSSStateScan.states(h, self.trans, p, d, chunk, ops, bufs)
                y_buf = self._buffer("y", (K, N, p), u2) if reuse else None
                y = torch.baddbmm(h[..., :p], X, c_out, out=y_buf).baddbmm_(Z, g_out)
        if grad or not self._uniform_out:
            y = y.transpose(0, 1).reshape(N, K * p)
            if not self._uniform_out:
                y = y.index_select(1, self.out_index)
            if self.bias is not None:
                y = y + self.bias
        else:
            # Reorder to (N, K·p) and add the bias in one pass into the (fresh) result.
            out = y.new_empty(N, K, p)
            if self.bias is not None:
                torch.add(y.transpose(0, 1), self.bias.view(K, p), out=out)
            else:
                out.copy_(y.transpose(0, 1))
            y = out.view(N, K * p)
        return y.reshape(*lead, self.out_features)

    def _buffer(self, name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
        """A reusable per-thread inference buffer (never returned to callers, never seen by autograd)."""
        local = self.__dict__.get("_local")
        if local is None:
            local = self.__dict__["_local"] = threading.local()
        store = local.__dict__.setdefault("buffers", {})
        buf = store.get(name)
        # Tensors made in inference mode cannot be written outside it (and vice versa is fine, but
        # keep one kind per mode).
        if (buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device
                or buf.is_inference() != torch.is_inference_mode_enabled()):
            buf = store[name] = like.new_empty(shape)
        return buf

    def clear_caches(self) -> None:
        """Drop the cached scan operators and the inference buffers of the calling thread."""
        self._ops_cache = self._last_trans = None
        local = self.__dict__.get("_local")
        if local is not None:
            local.__dict__.pop("buffers", None)

    def _chunk_ops(self, chunk: int, only_if_settled: bool = False):
        """Chunk operators for the current transitions, cached.

        They depend on `trans` only and are reused while it holds exactly the values they were built
        from (values are compared, not version counters, which writes through `.data` bypass; one pass
        over the small tensor). only_if_settled: build new operators only if `trans` is unchanged
        since the previous call, else return None; so training steps never pay for operators that
        the next update makes stale, while repeated evaluation of fixed weights gets them.
        """
        trans = self.trans.detach()
        cached = self._ops_cache
        if cached is not None and cached[1] == chunk and _same_values(cached[0], trans):
            return cached[2]
        if only_if_settled:
            seen, self._last_trans = self._last_trans, trans.clone()
            if seen is None or not _same_values(seen, trans):
                return None
        with torch.no_grad():
            ops = _chunk_operators(trans, chunk)
        self._ops_cache = (trans.clone(), chunk, ops)
        return ops

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state["_ops_cache"] = state["_last_trans"] = None
        state.pop("_local", None)  # per-thread buffers: neither picklable nor worth copying
        return state

    def forward_reference(self, u: torch.Tensor) -> torch.Tensor:
        """The plain stage loop (2K sequential small products, autograd throughout), for checks."""
        u2 = u.reshape(-1, self.in_features)
        N = u2.shape[0]
        if self.n_stages == 0:
            y = u2.new_zeros(N, self.out_features)
        else:
            K, p, d = self.n_stages, self.p, self.d
            cin = np.concatenate([[0], np.cumsum(self.dims_in)])
            uk = [u2[:, cin[k]:cin[k + 1]] for k in range(K)]
            win = [self.w_in[k, :self.dims_in[k]] for k in range(K)]
            ys = [uk[k] @ win[k][:, :self.dims_out[k]] for k in range(K)]
            x = u2.new_zeros(N, d)
            for k in range(K):
                ys[k] = ys[k] + x @ self.w_out[k, :d, :self.dims_out[k]]
                if k < K - 1:
                    x = x @ self.trans[k, 0] + uk[k] @ win[k][:, p:p + d]
            z = u2.new_zeros(N, d)
            for k in range(K - 1, -1, -1):
                ys[k] = ys[k] + z @ self.w_out[k, d:, :self.dims_out[k]]
                if k > 0:
                    z = z @ self.trans[K - 1 - k, 1] + uk[k] @ win[k][:, p + d:]
            y = torch.cat(ys, dim=1)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*u.shape[:-1], self.out_features)

    # -- inspection ----------------------------------------------------------------------------
    def realisation(self) -> SSSRealisation:
        """The current stage matrices (float64, padding dropped)."""
        if self.n_stages == 0:
            raise ValueError("a zero layer has no realisation")
        K, p, d = self.n_stages, self.p, self.d
        w_in = self.w_in.detach().cpu().double().numpy()
        trans = self.trans.detach().cpu().double().numpy()
        w_out = self.w_out.detach().cpu().double().numpy()
        r, s = self.causal_dims, self.anticausal_dims
        mats = {name: [] for name in "ABCDEFG"}
        for k in range(K):
            mk, pk = self.dims_in[k], self.dims_out[k]
            mats["D"].append(w_in[k, :mk, :pk].T.copy())
            mats["B"].append(w_in[k, :mk, p:p + r[k + 1]].T.copy())
            mats["F"].append(w_in[k, :mk, p + d:p + d + s[k]].T.copy())
            mats["C"].append(w_out[k, :r[k], :pk].T.copy())
            mats["G"].append(w_out[k, d:d + s[k + 1], :pk].T.copy())
            mats["A"].append(trans[k, 0, :r[k], :r[k + 1]].T.copy() if k < K - 1 else np.zeros((0, r[k])))
            mats["E"].append(trans[K - 1 - k, 1, :s[k + 1], :s[k]].T.copy() if k > 0 else np.zeros((0, s[1])))
        return SSSRealisation(self.dims_in, self.dims_out, **{n: tuple(v) for n, v in mats.items()})

    def to_dense(self) -> torch.Tensor:
        """W̃ (out × in), float64, from the current parameters (for checks, not for the forward pass)."""
        if self.n_stages == 0:
            return torch.zeros(self.out_features, self.in_features, dtype=torch.float64)
        return torch.from_numpy(self.realisation().to_dense())

    def n_weight_params(self, original_count: bool = False) -> int:
        """Weight parameters: exact stored count (padding excluded), or the original conservative formula."""
        if self.n_stages == 0:
            return 0
        if original_count:
            return sss_param_count((self.out_features, self.in_features), self.n_stages, self.d, exact=False)
        r, s = self.causal_dims, self.anticausal_dims
        total = 0
        for k in range(self.n_stages):
            mk, pk = self.dims_in[k], self.dims_out[k]
            total += pk * mk + r[k + 1] * (mk + r[k]) + pk * r[k] + s[k] * (mk + s[k + 1]) + pk * s[k + 1]
        return total

    def n_params(self, include_bias: bool = True, original_count: bool = False) -> int:
        bias = self.bias.numel() if (include_bias and self.bias is not None) else 0
        return self.n_weight_params(original_count) + bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, stages={self.n_stages}, "
                f"state_dim={self.d}, bias={self.bias is not None}")


class LowRankLayer(nn.Module):
    """y = L(Ru) + b with L (out × r) and R (r × in)."""

    def __init__(self, in_features: int, out_features: int, rank: int, *, bias: bool = True,
                 dtype: torch.dtype = torch.float32, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.in_features, self.out_features, self.rank = int(in_features), int(out_features), int(rank)
        self.left = nn.Parameter(torch.zeros(out_features, rank, **kw))
        self.right = nn.Parameter(torch.zeros(rank, in_features, **kw))
        self.bias = nn.Parameter(torch.zeros(out_features, **kw)) if bias else None

    @classmethod
    def from_factors(cls, factors: LowRankFactors, bias=None, *, dtype: torch.dtype = torch.float32,
                     device=None) -> "LowRankLayer":
        rows, cols = factors.shape
        layer = cls(cols, rows, factors.rank, bias=bias is not None and bias is not False, dtype=dtype, device=device)
        with torch.no_grad():
            layer.left.copy_(torch.from_numpy(np.asarray(factors.left, dtype=np.float64)))
            layer.right.copy_(torch.from_numpy(np.asarray(factors.right, dtype=np.float64)))
            b = _bias_tensor(bias, rows, dtype, device)
            if b is not None:
                layer.bias.copy_(b)
        return layer

    @classmethod
    def from_approximation(cls, approx: Approximation, bias=None, **kw) -> "LowRankLayer":
        if approx.method != "LR":
            raise ValueError(f"expected a low-rank approximation, got {approx.method!r}")
        return cls.from_factors(approx.structure, bias=bias, **kw)

    @classmethod
    def from_dense(cls, weight, share: float, bias=None, **kw) -> "LowRankLayer":
        return cls.from_approximation(approximate_low_rank(as_matrix(weight), share), bias=bias, **kw)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(u, self.right), self.left, self.bias)

    def factors(self) -> LowRankFactors:
        return LowRankFactors(self.left.detach().cpu().double().numpy(), self.right.detach().cpu().double().numpy())

    def to_dense(self) -> torch.Tensor:
        return torch.from_numpy(self.factors().to_dense())

    def n_weight_params(self) -> int:
        return self.left.numel() + self.right.numel()

    def n_params(self, include_bias: bool = True) -> int:
        bias = self.bias.numel() if (include_bias and self.bias is not None) else 0
        return self.n_weight_params() + bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
                f"bias={self.bias is not None}")
