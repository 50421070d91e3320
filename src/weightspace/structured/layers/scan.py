"""The state recursion of an SSS layer and its adjoint (the SSSLayer forward and
backward).

The scan: w_0 = 0, w_{t+1} = w_t T_t + V_t for t = 0..n-1, with row-vector states w_t of
shape (2, N, d) (causal and anticausal direction side by side) and transitions T_t of
shape (2, d, d). It runs either directly (n small products; training and larger batches)
or, for small inference batches where each product would be pure call overhead, as a
two-level chunked scan whose transfer operators depend on the transitions only (three
batched products per call once the operators are built; `chunk_operators`). The scan
helpers run without autograd; `StateScan` supplies the backward, the adjoint recursion
run by the same scan.
"""

from __future__ import annotations

import math

import torch


def _direct_scan(v: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """n sequential products; the fewest flops, best once the batch is large enough to
    fill them."""
    n, _, N, d = v.shape
    vs, ts = v.unbind(0), trans.unbind(0)
    states = [v.new_zeros(2, N, d)]
    for t in range(n):
        states.append(torch.baddbmm(vs[t], states[-1], ts[t]))
    return torch.stack(states)


def _chunk_transfer(
    trans: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transfer operators of chunks of c steps (they depend on the transitions only).

    For chunk j (steps jc..jc+c-1) with start state s_j and inputs V_{jc+τ}:
        w_{jc+i} = s_j P_{j,i} + Σ_{τ<i} V_{jc+τ} T_{jc+τ+1}⋯T_{jc+i-1},
        P_{j,i} = T_{jc}⋯T_{jc+i-1}.
    Returns psi (q·2, c·d, c·d), block (τ, i-1) = T_{jc+τ+1}⋯T_{jc+i-1} (zero for
    τ >= i), and pcat (q·2, d, c·d) = [P_{j,1} … P_{j,c}]; batch index =
    2·chunk + direction.
    Built by running the c-step recursion on identity inputs (d rows per input block)
    with the products P as d extra rows, one batched product per step.
    """
    n, _, d, _ = trans.shape
    c = chunk
    q = -(-n // c)
    pad = q * c - n
    tt = trans if not pad else torch.cat([trans, trans.new_zeros(pad, 2, d, d)])
    steps = tt.view(q, c, 2, d, d).transpose(0, 1)  # (c, q, 2, d, d)
    x = trans.new_zeros(
        c, q, 2, c + 1, d, d
    )  # row blocks 0..c-1: unit inputs; block c: P
    eye = torch.eye(d, dtype=trans.dtype, device=trans.device)
    torch.diagonal(x[:, :, :, :c], dim1=0, dim2=3).copy_(
        eye[None, None, :, :, None].expand(q, 2, d, d, c)
    )
    x[0, :, :, c].copy_(steps[0])
    xs = x.view(c, q * 2, (c + 1) * d, d).unbind(0)
    ts = steps.reshape(c, q * 2, d, d).unbind(0)
    for i in range(1, c):
        xs[i].baddbmm_(xs[i - 1], ts[i])
    both = x.permute(1, 2, 3, 4, 0, 5).reshape(q * 2, (c + 1) * d, c * d)
    return both[:, : c * d].contiguous(), both[:, c * d :].contiguous()


def chunk_operators(trans: torch.Tensor, chunk: int) -> tuple:
    """psi and pcat of _chunk_transfer, plus psi2 (2, (q-1)·d, (q-1)·d) for the
    chunk-start states.

    The start states follow the same kind of recursion one level up, s_0 = 0, s_{j+1} =
    s_j P_{j,c} + L_{j,c} (L = local states), so psi2 is the transfer operator of one
    chunk of q-1 steps with transitions P_{j,c}: [s_1 … s_{q-1}] = [L_{0,c} … L_{q-2,c}]
    psi2.
    """
    psi, pcat = _chunk_transfer(trans, chunk)
    n, _, d, _ = trans.shape
    q = -(-n // chunk)
    if q == 1:
        return psi, pcat, None
    p_last = pcat.view(q, 2, d, chunk, d)[: q - 1, :, :, chunk - 1]
    psi2, _ = _chunk_transfer(p_last.contiguous(), q - 1)
    return psi, pcat, psi2


def _chunked_scan(v: torch.Tensor, ops: tuple, chunk: int) -> torch.Tensor:
    """Scan by three batched products with the precomputed operators: local states of
    all chunks (psi), chunk-start states (psi2), and the start states carried through
    each chunk (pcat)."""
    psi, pcat, psi2 = ops
    n, _, N, d = v.shape
    c = chunk
    q = -(-n // c)
    pad = q * c - n
    vt = v if not pad else torch.cat([v, v.new_zeros(pad, 2, N, d)])
    vch = vt.view(q, c, 2, N, d).permute(0, 2, 3, 1, 4).reshape(q * 2, N, c * d)
    states = torch.bmm(vch, psi)  # (q·2, N, c·d): w_{jc+i} - s_j P_{j,i}, i = 1..c
    if q > 1:
        ends = (
            states.view(q, 2, N, c, d)[: q - 1, :, :, c - 1]
            .permute(1, 2, 0, 3)
            .reshape(2, N, (q - 1) * d)
        )
        starts = (
            torch.bmm(ends, psi2).view(2, N, q - 1, d).permute(2, 0, 1, 3)
        )  # s_1..s_{q-1}
        starts = torch.cat([v.new_zeros(1, 2, N, d), starts]).view(q * 2, N, d)
        states = torch.baddbmm(states, starts, pcat)
    states = states.view(q, 2, N, c, d).permute(0, 3, 1, 2, 4).reshape(q * c, 2, N, d)
    return torch.cat([v.new_zeros(1, 2, N, d), states[:n]])


def _scan_states(
    v: torch.Tensor, trans: torch.Tensor, chunk: int, ops=None
) -> torch.Tensor:
    """States w_0..w_n (n + 1, 2, N, d) of the recursion; chunk >= n runs it
    directly."""
    n = v.shape[0]
    if n == 0:
        return v.new_zeros(1, *v.shape[1:])
    if chunk >= n:
        return _direct_scan(v, trans)
    return _chunked_scan(
        v, ops if ops is not None else chunk_operators(trans, chunk), chunk
    )


def default_chunk(n: int) -> int:
    # psi costs ∝ c and the start-state operator ∝ (n/c)²: balance them.
    return max(2, math.isqrt(n))


class StateScan(torch.autograd.Function):
    """Stage states of an SSS layer from the input projections h = [D u | B u | F u]
    of shape (K, N, p + 2d).

    Returns (X, Z), each (K, N, d): X[k] = x_k, the causal state entering stage k, and
    Z[k] = z_{k+1}, the anticausal state entering it from the right. trans, of shape
    (K-1, 2, d, d), holds [A_tᵀ, E_{K-1-t}ᵀ]: as one scan over time t = 0..K-2, causal
    stage t runs together with anticausal stage K-1-t. The backward is the adjoint
    recursion, run by the same scan. `ops`: precomputed chunk operators for `chunk` (or
    None).
    """

    @staticmethod
    def states(h, trans, p: int, d: int, chunk: int, ops, out=None):
        """The forward computation itself (also called directly when no gradient is
        needed); `out`: optional (X, Z) buffers for the direct recursion."""
        K, N = h.shape[0], h.shape[1]
        n = K - 1
        if chunk >= n and (N >= 16 or out is not None):
            # Direct recursion, each direction written in place into its stage-ordered
            # buffer.
            X, Z = (
                out if out is not None else (h.new_empty(K, N, d), h.new_empty(K, N, d))
            )
            X[0].zero_()
            Z[K - 1].zero_()
            xs, zs = X.unbind(0), Z.unbind(0)
            bu, fu = h[:, :, p : p + d].unbind(0), h[:, :, p + d :].unbind(0)
            a, e = trans[:, 0].unbind(0), trans[:, 1].unbind(0)
            for t in range(n):
                torch.addmm(
                    bu[t], xs[t], a[t], out=xs[t + 1]
                )  # x_{t+1} = x_t A_tᵀ + B_t u_t
                k = K - 1 - t
                torch.addmm(
                    fu[k], zs[k], e[t], out=zs[k - 1]
                )  # z_k = z_{k+1} E_kᵀ + F_k u_k
            return X, Z
        # Both directions in one batched product per step (small batches: fewer,
        # costlier calls).
        v = torch.stack([h[:-1, :, p : p + d], h[1:, :, p + d :].flip(0)], dim=1)
        w = _scan_states(v, trans, chunk, ops)
        return w[:, 0].contiguous(), w[:, 1].flip(0)

    @staticmethod
    def forward(ctx, h, trans, p: int, d: int, chunk: int, ops):
        X, Z = StateScan.states(h, trans, p, d, chunk, ops)
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
        g = torch.stack(
            [gX, gZ.flip(0)], dim=1
        )  # dL/dw_t in time order, w_t = [x_t, z_{K-t}]
        # Adjoint: λ_n = g_n, λ_t = g_t + λ_{t+1} T_tᵀ. In reversed time s = n - t this
        # is the same recursion with inputs g_{n-s} and transitions T_{n-s}ᵀ (the first
        # transition is unused).
        t_adj = torch.cat(
            [trans.new_zeros(1, 2, d, d), trans[1:].flip(0)], dim=0
        ).transpose(-1, -2)
        mu = _scan_states(
            g[1:].flip(0), t_adj.contiguous(), n
        )  # direct: no operators to build
        lam = mu[1:].flip(0)  # λ_1..λ_n = dL/dV_0..dL/dV_{n-1}
        gh = gtrans = None
        if ctx.needs_input_grad[0]:
            gh = X.new_zeros(K, N, p + 2 * d)
            gh[:-1, :, p : p + d] = lam[:, 0]
            gh[1:, :, p + d :] = lam[:, 1].flip(0)
        if ctx.needs_input_grad[1]:
            w_prev = torch.stack([X[:-1], Z.flip(0)[:-1]], dim=1)  # w_0..w_{n-1}
            gtrans = torch.matmul(w_prev.transpose(-1, -2), lam)
        return gh, gtrans, None, None, None, None
