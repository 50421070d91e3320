"""Low displacement rank matrices: Toeplitz-like (closed form) and TD-LDR (learned operators), spec §3.4.

Toeplitz-like (TL). With Z_f the f-circulant down-shift (ones on the subdiagonal, f in the top-right
corner), the Sylvester displacement ∇(W) = Z₁W − WZ₋₁ is invertible (the spectra of Z₁ and Z₋₁ are
disjoint) and, for ∇(W) = Σ_j g_j h_jᵀ,

    W = ½ Σ_j C₁(g_j) · C₋₁(J h_j),

where C_f(v) = K(Z_f, v) = [v, Z_f v, …, Z_f^{n−1} v] is the f-circulant matrix with first column v and
J reverses a vector. The approximator truncates ∇(W) to rank r = ⌊B/2n⌋ with the truncated SVD (as the
low-rank approximator at the same share) and maps it back. Toeplitz matrices have displacement rank ≤ 2,
so they are recovered exactly from r ≥ 2. Square matrices only.

TD-LDR (Thomas et al. 2018). Operators A, B are tridiagonal plus the two corner entries (3n numbers each)
and W̃ = Σ_i K(A, g_i) K(Bᵀ, h_i)ᵀ with G, H ∈ R^{n×r}: 2rn + 6n parameters. Everything (operators and
generators) is fitted to ‖W − W̃‖_F by SGD. Krylov matrices are built by repeated application of the
O(n) tridiagonal operator rather than by matrix powers: the same W̃ for O(rn²) instead of O(n⁴) work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from weightspace.structured.approximation import (
    Approximation,
    as_matrix,
    resolve_budget,
)
from weightspace.structured.low_rank import low_rank_rank, truncated_svd_factors


def _require_square(mat: np.ndarray, what: str) -> int:
    if mat.shape[0] != mat.shape[1] or mat.shape[0] == 0:
        raise ValueError(
            f"{what} is defined for non-empty square matrices only, got shape {mat.shape}"
        )
    return int(mat.shape[0])


# ---------------------------------------------------------------------------------------------
# Toeplitz-like


def shift_matrix(n: int, f: float) -> np.ndarray:
    """Z_f: ones on the subdiagonal, f at (0, n−1)."""
    z = np.diag(np.ones(n - 1), k=-1)
    z[0, n - 1] += f
    return z


def f_circulant(first_column, f: float) -> np.ndarray:
    """C_f(v) = [v, Z_f v, …, Z_f^{n−1} v]: entry (i, j) = v[(i − j) mod n], times f above the diagonal."""
    v = np.asarray(first_column, dtype=np.float64)
    n = v.shape[0]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    return v[(i - j) % n] * np.where(i < j, f, 1.0)


def sylvester_displacement(weight) -> np.ndarray:
    """∇(W) = Z₁W − WZ₋₁ (Z₁W cycles the rows down; WZ₋₁ cycles the columns left, negating the wrap)."""
    mat = as_matrix(weight)
    _require_square(mat, "the Sylvester displacement")
    shifted_cols = np.roll(mat, -1, axis=1)
    shifted_cols[:, -1] *= -1.0
    return np.roll(mat, 1, axis=0) - shifted_cols


@dataclass(frozen=True, eq=False)
class ToeplitzLike:
    """W̃ with displacement Z₁W̃ − W̃Z₋₁ = G H; G (n × r), H (r × n)."""

    G: np.ndarray
    H: np.ndarray

    def __post_init__(self) -> None:
        if (
            self.G.ndim != 2
            or self.H.ndim != 2
            or self.G.shape[1] != self.H.shape[0]
            or self.G.shape[0] != self.H.shape[1]
        ):
            raise ValueError(
                f"generators must be (n × r) and (r × n), got {self.G.shape} and {self.H.shape}"
            )

    @property
    def rank(self) -> int:
        return int(self.G.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        n = int(self.G.shape[0])
        return (n, n)

    @property
    def n_params(self) -> int:
        return int(self.G.size + self.H.size)

    def to_dense(self) -> np.ndarray:
        n = self.G.shape[0]
        out = np.zeros((n, n))
        for g, h in zip(self.G.T, self.H):
            out += f_circulant(g, 1.0) @ f_circulant(h[::-1], -1.0)
        return 0.5 * out


def approximate_toeplitz_like(
    weight, share: float | None = None, *, budget: int | None = None
) -> Approximation:
    """Toeplitz-like approximation with displacement rank r = ⌊B/2n⌋ (2rn ≤ B parameters).

    Exact when the displacement rank of W is ≤ r (Toeplitz: ≤ 2). r = 0 gives the zero matrix.
    """
    mat = as_matrix(weight)
    n = _require_square(mat, "the Toeplitz-like approximation")
    limit = resolve_budget(mat.shape, share, budget)
    rank = low_rank_rank(mat.shape, limit)
    factors = truncated_svd_factors(sylvester_displacement(mat), rank)
    structure = ToeplitzLike(factors.left, factors.right)
    info = {
        "rank": rank,
        "budget": limit,
        "share": None if share is None else float(share),
        "size": n,
    }
    if rank == 0:
        return Approximation(np.zeros_like(mat), 0, None, "TL", info)
    return Approximation(
        structure.to_dense(), structure.n_params, structure, "TL", info
    )


def toeplitz_like_matvec(
    G: torch.Tensor, H: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """W̃ uᵀ for u (N × n) as (N × n), from the generators by FFT in O(r·n log n) per sample.

    C₁(a) x is a cyclic convolution; C₋₁(a) = D⁻¹ C₁(Da) D with D = diag(ω^k), ω = e^{iπ/n}, ω^n = −1.
    """
    n = G.shape[0]
    real = u.dtype
    cplx = torch.complex128 if real == torch.float64 else torch.complex64
    k = torch.arange(n, device=u.device, dtype=real)
    omega = torch.polar(torch.ones_like(k), torch.pi * k / n).to(cplx)
    flipped = torch.flip(H, dims=[1])  # (r, n): J h_j per row
    # z_j = C₋₁(J h_j) u for every generator: (N, r, n)
    fu = torch.fft.fft(u.to(cplx) * omega, dim=-1)  # (N, n)
    fh = torch.fft.fft(flipped.to(cplx) * omega, dim=-1)  # (r, n)
    z = torch.fft.ifft(fh[None] * fu[:, None], dim=-1) * omega.conj()
    # y = ½ Σ_j C₁(g_j) z_j
    fg = torch.fft.fft(G.T.to(cplx), dim=-1)  # (r, n)
    y = torch.fft.ifft((fg[None] * torch.fft.fft(z, dim=-1)).sum(dim=1), dim=-1)
    return 0.5 * y.real.to(real)


# ---------------------------------------------------------------------------------------------
# TD-LDR: tridiagonal-plus-corners operators


@dataclass(frozen=True, eq=False)
class TridiagonalCorners:
    """An n × n operator: diag (n), upper (n−1) at (i, i+1), lower (n−1) at (i+1, i), corners at
    (0, n−1) and (n−1, 0); 3n numbers. Entries at coinciding positions (n ≤ 2) add up."""

    diag: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    corners: np.ndarray

    def __post_init__(self) -> None:
        n = self.diag.shape[0]
        if (
            n < 2
            or self.upper.shape != (n - 1,)
            or self.lower.shape != (n - 1,)
            or self.corners.shape != (2,)
        ):
            raise ValueError(
                "expected diag (n,), upper and lower (n−1,), corners (2,) with n ≥ 2"
            )

    @property
    def n(self) -> int:
        return int(self.diag.shape[0])

    def to_dense(self) -> np.ndarray:
        n = self.n
        out = np.diag(self.diag) + np.diag(self.upper, 1) + np.diag(self.lower, -1)
        out[0, n - 1] += self.corners[0]
        out[n - 1, 0] += self.corners[1]
        return out

    def transpose(self) -> "TridiagonalCorners":
        return TridiagonalCorners(
            self.diag, self.lower, self.upper, self.corners[::-1].copy()
        )

    def as_vector(self) -> np.ndarray:
        return np.concatenate([self.diag, self.upper, self.lower, self.corners])

    @classmethod
    def from_vector(cls, values) -> "TridiagonalCorners":
        v = np.asarray(values, dtype=np.float64)
        n = v.shape[0] // 3
        if v.shape != (3 * n,) or n < 2:
            raise ValueError(f"expected 3n values with n ≥ 2, got {v.shape}")
        return cls(
            v[:n].copy(),
            v[n : 2 * n - 1].copy(),
            v[2 * n - 1 : 3 * n - 2].copy(),
            v[3 * n - 2 :].copy(),
        )


def _krylov(op: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(n, n, r): [j] = op^j vectors."""
    n = op.shape[0]
    out = np.empty((n,) + vectors.shape)
    out[0] = vectors
    for j in range(1, n):
        out[j] = op @ out[j - 1]
    return out


@dataclass(frozen=True, eq=False)
class LDRFactors:
    """W̃ = Σ_i K(A, g_i) K(Bᵀ, h_i)ᵀ with G, H (n × r)."""

    A: TridiagonalCorners
    B: TridiagonalCorners
    G: np.ndarray
    H: np.ndarray

    def __post_init__(self) -> None:
        n = self.A.n
        if (
            self.B.n != n
            or self.G.shape != self.H.shape
            or self.G.ndim != 2
            or self.G.shape[0] != n
        ):
            raise ValueError("A, B must be n × n operators and G, H both (n × r)")

    @property
    def rank(self) -> int:
        return int(self.G.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.A.n, self.A.n)

    @property
    def n_params(self) -> int:
        return ldr_param_count(self.A.n, self.rank)

    def to_dense(self) -> np.ndarray:
        ka = _krylov(self.A.to_dense(), self.G)
        kb = _krylov(self.B.to_dense().T, self.H)
        return np.einsum("jar,jbr->ab", ka, kb)


def ldr_param_count(n: int, rank: int) -> int:
    """2rn for the generators plus 3n for each operator."""
    return 2 * rank * n + 6 * n


def ldr_rank(n: int, budget: int, *, strict_budget: bool = False) -> int:
    """Displacement rank for a budget: int((B − 6n + 8)/2n) as the original, which may exceed the
    budget by up to 8 parameters; strict_budget=True uses ⌊(B − 6n)/2n⌋ instead. May be ≤ 0."""
    if strict_budget:
        return (budget - 6 * n) // (2 * n)
    return int(
        (budget - 6 * n + 8) / (2 * n)
    )  # int() truncates toward zero, as the original


def tridiag_apply(
    diag: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    corners: torch.Tensor,
    x: torch.Tensor,
) -> torch.Tensor:
    """A x for a tridiagonal-plus-corners A and x (n, m), in O(nm)."""
    zero = x.new_zeros((1,) + x.shape[1:])
    n = x.shape[0]
    out = diag[:, None] * x
    out = out + torch.cat([upper[:, None] * x[1:], zero])
    out = out + torch.cat([zero, lower[:, None] * x[:-1]])
    gap = x.new_zeros((n - 2,) + x.shape[1:])
    return out + torch.cat([corners[0] * x[-1:], gap, corners[1] * x[:1]])


def _torch_krylov(ops: tuple, x: torch.Tensor) -> torch.Tensor:
    powers = [x]
    for _ in range(x.shape[0] - 1):
        powers.append(tridiag_apply(*ops, powers[-1]))
    return torch.stack(powers)


def _transposed(ops: tuple) -> tuple:
    diag, upper, lower, corners = ops
    return diag, lower, upper, torch.flip(corners, dims=[0])


def ldr_dense_torch(
    a_ops: tuple, b_ops: tuple, G: torch.Tensor, H: torch.Tensor
) -> torch.Tensor:
    """W̃ = Σ_i K(A, g_i) K(Bᵀ, h_i)ᵀ, differentiable in every argument."""
    n = G.shape[0]
    ka = _torch_krylov(a_ops, G).transpose(0, 1).reshape(n, -1)  # (n, powers·r)
    kb = _torch_krylov(_transposed(b_ops), H).transpose(0, 1).reshape(n, -1)
    return ka @ kb.T


def ldr_matvec(
    a_ops: tuple, b_ops: tuple, G: torch.Tensor, H: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """W̃ uᵀ for u (N × n) as (N × n) without forming W̃.

    K(Bᵀ, h)ᵀ u has entries hᵀ B^j u, so with P_j = B^j uᵀ and w_j = G (Hᵀ P_j),
    W̃ uᵀ = Σ_j A^j w_j, evaluated by Horner's rule.
    """
    p = _torch_krylov(b_ops, u.T)  # (n, n, N)
    w = torch.einsum("ai,bi,jbN->jaN", G, H, p)
    y = w[-1]
    for j in range(w.shape[0] - 2, -1, -1):
        y = tridiag_apply(*a_ops, y) + w[j]
    return y.T


def _glorot(rng: np.random.Generator, shape: tuple[int, int], size=None) -> np.ndarray:
    limit = np.sqrt(6.0 / sum(shape))
    return rng.uniform(-limit, limit, size=shape if size is None else size)


def random_ldr(n: int, rank: int, rng: np.random.Generator) -> LDRFactors:
    """Glorot-uniform operators (limit √(6/2n) for all 3n entries) and generators (limit √(6/(n + r)))."""
    a = TridiagonalCorners.from_vector(_glorot(rng, (n, n), size=3 * n))
    b = TridiagonalCorners.from_vector(_glorot(rng, (n, n), size=3 * n))
    return LDRFactors(a, b, _glorot(rng, (n, rank)), _glorot(rng, (n, rank)))


def _ops_tensors(op: TridiagonalCorners) -> tuple:
    return tuple(
        torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for v in (op.diag, op.upper, op.lower, op.corners)
    )


def _sgd_phase(params: list, loss_fn, lr: float, tol: float, max_steps: int) -> list:
    """SGD at one learning rate while the loss falls by more than tol per step; returns the parameter
    values with the lowest loss seen (the loss is evaluated before each step)."""
    optimiser = torch.optim.SGD(params, lr=lr)
    best = [p.detach().clone() for p in params]
    last, loss = np.inf, 1e300  # the first step always runs
    for _ in range(max_steps):
        if not last - loss > tol:  # also stops on NaN
            break
        last = loss
        optimiser.zero_grad()
        value = loss_fn()
        value.backward()
        loss = float(value.detach())
        if loss < last:
            best = [p.detach().clone() for p in params]
        optimiser.step()
    with torch.no_grad():
        for p, b in zip(params, best):
            p.copy_(b)
    return params


def fit_ldr(
    weight,
    rank: int,
    rng: np.random.Generator,
    *,
    learning_rates=(1.0, 0.1, 0.01),
    tol: float = 1e-3,
    max_steps: int = 5000,
) -> LDRFactors:
    """One restart: Glorot initialisation, then SGD on ‖W − W̃‖_F at each learning rate in turn, each until
    the loss decrease per step is < tol (at most max_steps steps; the original has no cap)."""
    mat = as_matrix(weight)
    n = _require_square(mat, "the TD-LDR approximation")
    init = random_ldr(n, rank, rng)
    target = torch.from_numpy(mat)
    a_ops, b_ops = _ops_tensors(init.A), _ops_tensors(init.B)
    G = torch.tensor(init.G, requires_grad=True)
    H = torch.tensor(init.H, requires_grad=True)
    params = [*a_ops, *b_ops, G, H]

    def loss_fn():
        return torch.linalg.norm(target - ldr_dense_torch(a_ops, b_ops, G, H))

    for lr in learning_rates:
        _sgd_phase(params, loss_fn, lr, tol, max_steps)
    values = [p.detach().numpy().copy() for p in params]
    return LDRFactors(
        TridiagonalCorners(*values[0:4]),
        TridiagonalCorners(*values[4:8]),
        values[8],
        values[9],
    )


def approximate_ldr(
    weight,
    share: float | None = None,
    *,
    n_restarts: int = 5,
    seed: int = 0,
    strict_budget: bool = False,
    learning_rates=(1.0, 0.1, 0.01),
    tol: float = 1e-3,
    max_steps: int = 5000,
    budget: int | None = None,
) -> Approximation:
    """TD-LDR approximation: r from ldr_rank, best of n_restarts SGD fits by ‖W − W̃‖_F.

    Budget exception (documented, as the original): the rank rule may exceed ⌊share·size⌋ by up to 8
    parameters unless strict_budget=True. r ≤ 0, or no fit better than the zero matrix, gives the zero
    matrix with 0 parameters. Restarts draw from np.random.default_rng(seed).
    """
    mat = as_matrix(weight)
    n = _require_square(mat, "the TD-LDR approximation")
    if n < 2:
        raise ValueError("the TD-LDR approximation needs n ≥ 2")
    limit = resolve_budget(mat.shape, share, budget)
    rank = ldr_rank(n, limit, strict_budget=strict_budget)
    info = {
        "rank": int(max(rank, 0)),
        "budget": limit,
        "share": None if share is None else float(share),
        "size": n,
        "strict_budget": bool(strict_budget),
        "seed": int(seed),
    }
    best, best_err, errors = None, float(np.linalg.norm(mat)), []
    if rank > 0:
        rng = np.random.default_rng(seed)
        for _ in range(n_restarts):
            factors = fit_ldr(
                mat,
                rank,
                rng,
                learning_rates=learning_rates,
                tol=tol,
                max_steps=max_steps,
            )
            dense = factors.to_dense()
            err = (
                float(np.linalg.norm(mat - dense))
                if np.all(np.isfinite(dense))
                else np.inf
            )
            errors.append(err)
            if err < best_err:
                best, best_err = (factors, dense), err
    info["restart_errors"] = tuple(errors)
    if best is None:
        return Approximation(np.zeros_like(mat), 0, None, "LDR", info)
    return Approximation(best[1], best[0].n_params, best[0], "LDR", info)
