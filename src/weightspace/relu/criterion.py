"""Per-side linear regime of the 1D Monte Carlo (§2.4–2.5): step size and sufficient criterion.

While every kink −b_i/a_i stays inside (−1, 1), a neuron with a_i > 0 is active exactly on the
positive data points and one with a_i < 0 exactly on the negative ones, so the network is affine on
each side: f(x) = v_s·(x, 1) with v_s = (Σ_{i∈s} w_i a_i, c + Σ_{i∈s} w_i b_i). Vectors over the
two sides are ordered (slope₊, intercept₊, slope₋, intercept₋); side + holds x ∈ {1, 2, 3}.

Everything is batched over N networks: parameters are (N, m) tensors, c is (N,), the sample
weights p̂ are (N, 6) over the points POINTS, labels y are (6,). Per-net 4×4 matrices are (N, 4, 4).

The sufficient criterion follows ``check_convergence`` of the original code (including the |Σ| in
the Σ-difference bounds) with one correction; ``psi_bound="original"`` reproduces the original.
With K = M^{1/2} A^ref M^{1/2} = U diag(λ) Uᵀ and μ_k = 1 − hλ_k, the bound on
S_ψ = h Σ_n ‖(I − hK)^n ψ₀‖_∞ here is Σ_k h/(1 − |μ_k|)·|⟨u_k, ψ₀⟩|·‖u_k‖_∞ with u_k the k-th
eigenvector (a column of U). The original multiplies by the ℓ1 norm of the k-th *row* of U
(``np.linalg.norm`` of a 1×4 ``np.matrix`` with ord=inf) and uses h/|1 − μ_k| = 1/λ_k, which is
below the geometric sum when hλ_k > 1. In "original" mode the decisions match the original code
net for net; the corrected bound certifies some nets a few checks earlier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POINTS = (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)
LABELS = (-1.0, 2.0, -1.0, 1.0, -2.0, 1.0)
POS = (3, 4, 5)  # indices of the points x > 0 in POINTS
NEG = (0, 1, 2)

# Q̃ of Proposition 5.31: couples a and b to w and w to a + b.
_QTILDE = ((0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0))


def points(device=None, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(POINTS, device=device, dtype=dtype)


def labels(offset: float, device=None, dtype=torch.float64) -> torch.Tensor:
    """The six labels plus the global offset Δ."""
    return torch.tensor(LABELS, device=device, dtype=dtype) + float(offset)


def _blockdiag(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    n = upper.shape[0]
    out = upper.new_zeros(n, 4, 4)
    out[:, :2, :2] = upper
    out[:, 2:, 2:] = lower
    return out


def side_data_matrices(weights: torch.Tensor) -> torch.Tensor:
    """M_s = Σ_{j∈s} p̂_j [[x_j², x_j], [x_j, 1]] for s = +, − as (N, 2, 2, 2)."""
    x = points(weights.device, weights.dtype)
    blocks = []
    for side in (POS, NEG):
        p, xs = weights[:, side], x[list(side)]
        m11 = p @ (xs * xs)
        m12 = p @ xs
        m22 = p.sum(1)
        blocks.append(
            torch.stack([torch.stack([m11, m12], -1), torch.stack([m12, m22], -1)], -2)
        )
    return torch.stack(blocks, 1)


def data_matrix_roots(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """M^{1/2} and its pseudo-inverse, block-diagonal (N, 4, 4).

    Computed blockwise from the 2×2 eigendecompositions; eigenvalues below 1e-15 times the largest
    are treated as zero, as numpy's pinv does (only X-degenerate sides are singular).
    """
    evals, evecs = torch.linalg.eigh(side_data_matrices(weights))
    evals = evals.clamp(min=0.0)
    root = evals.sqrt()
    tol = 1e-15 * root.amax(dim=(1, 2), keepdim=True)
    inv_root = torch.where(root > tol, 1.0 / torch.where(root > tol, root, 1.0), 0.0)
    sq = evecs @ torch.diag_embed(root) @ evecs.transpose(-1, -2)
    sq_inv = evecs @ torch.diag_embed(inv_root) @ evecs.transpose(-1, -2)
    return _blockdiag(sq[:, 0], sq[:, 1]), _blockdiag(sq_inv[:, 0], sq_inv[:, 1])


def side_gram(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σ_s = Σ_{i: sign a_i = s} (a_i, b_i, w_i)ᵀ(a_i, b_i, w_i) for s = +, − as (N, 2, 3, 3)."""
    theta = torch.stack([a, b, w], 1)  # (N, 3, m)
    grams = []
    for mask in (a > 0, a < 0):
        masked = theta * mask.unsqueeze(1)
        grams.append(masked @ theta.transpose(1, 2))
    return torch.stack(grams, 1)


def reference_matrix(sigma: torch.Tensor) -> torch.Tensor:
    """A^ref = C + G with G_s = Σ_s[0:2, 0:2] + (Σ_s)_ww I₂ (Leaky parameter 0, so B = I).

    C adds the shared output bias c to both intercepts.
    """
    eye = torch.eye(2, device=sigma.device, dtype=sigma.dtype)
    g = sigma[:, :, :2, :2] + sigma[:, :, 2:3, 2:3] * eye
    aref = _blockdiag(g[:, 0], g[:, 1])
    for i in (1, 3):
        for j in (1, 3):
            aref[:, i, j] += 1.0
    return aref


def side_parameters(sigma: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """v = (slope₊, intercept₊, slope₋, intercept₋) of the per-side affine function, (N, 4)."""
    wa, wb = sigma[:, :, 2, 0], sigma[:, :, 2, 1]
    return torch.stack([wa[:, 0], c + wb[:, 0], wa[:, 1], c + wb[:, 1]], 1)


def residual_moments(
    v: torch.Tensor, weights: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """û = per side (Σ_j x_j e_j, Σ_j e_j) with e_j = p̂_j (y_j − v_s·(x_j, 1)), (N, 4)."""
    x = points(weights.device, weights.dtype)
    parts = []
    for k, side in enumerate((POS, NEG)):
        idx = list(side)
        fit = v[:, 2 * k : 2 * k + 1] * x[idx] + v[:, 2 * k + 1 : 2 * k + 2]
        e = weights[:, idx] * (y[idx] - fit)
        parts += [e @ x[idx], e.sum(1)]
    return torch.stack(parts, 1)


def regression_optimum(weights: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """v^opt: the p̂-weighted least-squares line on each side, (N, 4) (pinv for degenerate sides)."""
    zero = torch.zeros(weights.shape[0], 4, device=weights.device, dtype=weights.dtype)
    u0 = residual_moments(zero, weights, y)
    m = _blockdiag(*side_data_matrices(weights).unbind(1))
    return (torch.linalg.pinv(m, hermitian=True) @ u0.unsqueeze(-1)).squeeze(-1)


def per_side_risk(
    v: torch.Tensor, weights: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """½ Σ_j p̂_j (v_s·(x_j, 1) − y_j)² of the per-side affine function v, (N,)."""
    x = points(weights.device, weights.dtype)
    total = torch.zeros(weights.shape[0], device=weights.device, dtype=weights.dtype)
    for k, side in enumerate((POS, NEG)):
        idx = list(side)
        fit = v[:, 2 * k : 2 * k + 1] * x[idx] + v[:, 2 * k + 1 : 2 * k + 2]
        total = total + 0.5 * (weights[:, idx] * (fit - y[idx]) ** 2).sum(1)
    return total


def _iteration_matrix(sigma: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    k = root @ reference_matrix(sigma) @ root
    return 0.5 * (k + k.transpose(1, 2))


def large_step_sizes(
    a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """h = 1/λ_max(M^{1/2} A^ref M^{1/2}) per network (half the linear stability limit), (N,)."""
    root, _ = data_matrix_roots(weights)
    lam = torch.linalg.eigvalsh(_iteration_matrix(side_gram(a, b, w), root))
    return 1.0 / lam[:, -1]


def x_degenerate(weights: torch.Tensor) -> torch.Tensor:
    """A side carries at most one data point with positive weight, (N,) bool."""
    pos = (weights[:, list(POS)] > 0).sum(1)
    neg = (weights[:, list(NEG)] > 0).sum(1)
    return (pos <= 1) | (neg <= 1)


def a_degenerate(a: torch.Tensor) -> torch.Tensor:
    """All a_i have the same sign, (N,) bool."""
    return (a > 0).all(1) | (a < 0).all(1)


@dataclass
class CriterionResult:
    """Outcome of the sufficient criterion per network; the bounds are kept for diagnostics."""

    certified: torch.Tensor  # (N,) bool: no kink can ever reach a data point
    a_degenerate: torch.Tensor  # (N,) bool
    x_degenerate: torch.Tensor  # (N,) bool
    rho: torch.Tensor  # spectral radius of I − hK
    kappa: torch.Tensor  # bound on the total future movement
    delta: torch.Tensor  # induction constant, must be ≤ 1/2


def sufficient_criterion(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    w: torch.Tensor,
    h: torch.Tensor,
    weights: torch.Tensor,
    y: torch.Tensor,
    psi_bound: str = "exact",
) -> CriterionResult:
    """Batched ``check_convergence`` (§2.5 of the spec) for N networks with step sizes h (N,).

    Certified nets provably keep every kink inside (−1, 1) under further GD with step h, hence
    converge to the per-side regression. Networks with non-finite parameters are never certified.
    """
    if psi_bound not in ("exact", "original"):
        raise ValueError(f"psi_bound must be 'exact' or 'original', got {psi_bound!r}")
    dtype, device = a.dtype, a.device
    finite = (
        torch.isfinite(a).all(1) & torch.isfinite(b).all(1) & torch.isfinite(w).all(1)
    )
    finite &= torch.isfinite(c) & torch.isfinite(h)
    # Zeroed stand-ins keep eigh away from NaNs; such nets are rejected through `finite`.
    a_, b_, w_ = (torch.where(finite.unsqueeze(1), t, 0.0) for t in (a, b, w))
    c_ = torch.where(finite, c, 0.0)
    h_ = torch.where(finite, h, 0.0)

    sigma = side_gram(a_, b_, w_)
    root, root_inv = data_matrix_roots(weights)
    uhat = residual_moments(side_parameters(sigma, c_), weights, y)
    psi0 = (root_inv @ uhat.unsqueeze(-1)).squeeze(-1)

    lam, vecs = torch.linalg.eigh(_iteration_matrix(sigma, root))
    hcol = h_.unsqueeze(1)
    mu = 1.0 - hcol * lam
    rho = mu.abs().amax(1)
    stable = rho < 1.0
    s_bound = 2.0 * h_ / (1.0 - rho)
    coef = (vecs.transpose(1, 2) @ psi0.unsqueeze(-1)).squeeze(-1).abs()
    if psi_bound == "exact":
        # (I − hK)^k ψ₀ = Σ_k μ_k^n ⟨u_k, ψ₀⟩ u_k, summed over n geometrically per component.
        geometric = hcol / (1.0 - mu.abs())
        vec_norm = vecs.abs().amax(1)  # ‖column k‖_∞
    else:
        geometric = hcol / (1.0 - mu).abs()
        # The original takes np.linalg.norm(U[k, :], inf) of a 1×4 np.matrix: the ℓ1 norm of row k.
        vec_norm = vecs.abs().sum(2)
    s_psi = (geometric * coef * vec_norm).sum(1)

    norm_root = root.abs().sum(2).amax(1)  # ‖M^{1/2}‖_∞ (max row sum); ‖B‖_∞ = 1
    kappa = 2.0 * norm_root * s_psi

    # Proposition 5.31: bounds on the future change of Σ_s, with |Σ| (fix of 2019-11-09).
    qt = torch.tensor(_QTILDE, device=device, dtype=dtype)
    abs_sigma = sigma.abs()
    k4 = kappa.view(-1, 1, 1, 1)
    sigma_norm = abs_sigma.sum(3).amax(2).view(-1, 2, 1, 1)
    diff = (
        k4 * (qt @ abs_sigma + abs_sigma @ qt)
        + 8.0 * k4**2 * torch.exp(4.0 * k4) * sigma_norm
    )
    # Proposition 5.33: from Σ to A^ref, then to the induction constant δ.
    gw = diff[:, :, 2, 2].amax(1)
    gab = (diff[:, :, 0, 0] + diff[:, :, 0, 1] + diff[:, :, 1, 1]).amax(1)
    gwab = kappa * (
        abs_sigma[:, :, 2, 0]
        + abs_sigma[:, :, 2, 1]
        + diff[:, :, 2, 0]
        + diff[:, :, 2, 1]
    ).amax(1)
    delta = s_bound * norm_root**2 * (gw + gab + gwab)

    # Per neuron: future |Δa|, |Δb| ≤ κ|w| + 2κ²e^{2κ} max(|a|, |b|, |w|).
    kc = kappa.unsqueeze(1)
    abs_a, abs_b, abs_w = a_.abs(), b_.abs(), w_.abs()
    largest = torch.maximum(torch.maximum(abs_a, abs_b), abs_w)
    movement = kc * abs_w + 2.0 * kc**2 * torch.exp(2.0 * kc) * largest
    inside = (abs_a - movement) > (abs_b + movement)
    neurons_ok = (inside | (a_ == 0)).all(1)

    certified = finite & stable & (kappa < 0.5) & (delta <= 0.5) & neurons_ok
    return CriterionResult(
        certified=certified,
        a_degenerate=a_degenerate(a),
        x_degenerate=x_degenerate(weights),
        rho=rho,
        kappa=kappa,
        delta=delta,
    )


def expected_step_times_width() -> float:
    """Leading-order h·m at He init: 1/((Σ_{x>0} x²/6)·1) = 3/7."""
    return 1.0 / (sum(x * x for x in POINTS if x > 0) / 6.0)


__all__ = [
    "POINTS",
    "LABELS",
    "CriterionResult",
    "a_degenerate",
    "data_matrix_roots",
    "expected_step_times_width",
    "labels",
    "large_step_sizes",
    "per_side_risk",
    "points",
    "reference_matrix",
    "regression_optimum",
    "residual_moments",
    "side_data_matrices",
    "side_gram",
    "side_parameters",
    "sufficient_criterion",
    "x_degenerate",
]
