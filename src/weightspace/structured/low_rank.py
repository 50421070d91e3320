"""Low-rank (truncated SVD) approximation within a parameter budget (spec §3.2).

r = ⌊B/(rows + cols)⌋; W̃ = L R with the singular values split symmetrically, L = U_r Σ_r^{1/2},
R = Σ_r^{1/2} V_rᵀ; r(rows + cols) parameters. Eckart–Young optimal for its rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from weightspace.structured.approximation import Approximation, as_matrix, param_budget


@dataclass(frozen=True, eq=False)
class LowRankFactors:
    """W̃ = left @ right with left (rows × r) and right (r × cols)."""

    left: np.ndarray
    right: np.ndarray

    def __post_init__(self) -> None:
        if (
            self.left.ndim != 2
            or self.right.ndim != 2
            or self.left.shape[1] != self.right.shape[0]
        ):
            raise ValueError(
                f"factor shapes do not chain: {self.left.shape} @ {self.right.shape}"
            )

    @property
    def rank(self) -> int:
        return int(self.left.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.left.shape[0]), int(self.right.shape[1]))

    @property
    def n_params(self) -> int:
        return int(self.left.size + self.right.size)

    def to_dense(self) -> np.ndarray:
        return self.left @ self.right


def low_rank_rank(shape: tuple[int, int], budget: int) -> int:
    """Largest r with r(rows + cols) <= budget, capped at min(rows, cols)."""
    rows, cols = shape
    if rows + cols == 0:
        return 0
    return int(min(max(budget, 0) // (rows + cols), rows, cols))


def truncated_svd_factors(weight, rank: int) -> LowRankFactors:
    """Best rank-r factors of W (Frobenius and spectral norm), singular values split as Σ^{1/2}·Σ^{1/2}."""
    mat = as_matrix(weight)
    rank = int(min(max(rank, 0), *mat.shape))
    if rank == 0:
        return LowRankFactors(np.zeros((mat.shape[0], 0)), np.zeros((0, mat.shape[1])))
    try:
        u, s, vt = scipy.linalg.svd(
            mat, full_matrices=False, lapack_driver="gesdd", check_finite=False
        )
    except (
        np.linalg.LinAlgError
    ):  # gesdd occasionally fails to converge; gesvd is slower but robust
        u, s, vt = scipy.linalg.svd(
            mat, full_matrices=False, lapack_driver="gesvd", check_finite=False
        )
    root = np.sqrt(s[:rank])
    return LowRankFactors(u[:, :rank] * root, root[:, None] * vt[:rank])


def approximate_low_rank(weight, share: float) -> Approximation:
    """Truncated-SVD approximation with the largest rank that fits ⌊share·size⌋ parameters."""
    mat = as_matrix(weight)
    budget = param_budget(mat.shape, share)
    rank = low_rank_rank(mat.shape, budget)
    factors = truncated_svd_factors(mat, rank)
    return Approximation(
        dense=factors.to_dense(),
        n_params=factors.n_params,
        structure=factors,
        method="LR",
        info={"rank": factors.rank, "budget": budget, "share": float(share)},
    )
