"""Products of sparse matrices (PSM) via pyfaust's hierarchical factorisation (spec §3.3).

W̃ = S_1 S_2 ⋯ S_J with factor shapes (rows × q), (q × q)^{J−2}, (q × cols), q = max(rows, cols).
The budget B = ⌊s·rows·cols⌋ is a total number of nonzeros T = B; the last factor gets L = ⌊ℓ·T⌋ of
them and the rest is spread over the other factors linearly or exponentially. pyfaust's hierarchical
PALM4MSA (Le Magoarou & Gribonval, backend 2016) peels one sparse factor off the left at a time: every
factor S_i and every intermediate residual R_i (q × cols) is projected onto `sp(shape, nnz,
normalized=True)`, the residual R_i getting the nonzero count of factor i+1. The approximator tries
ℓ ∈ linspace(0.1, max_last_share, n_steps) and keeps the lowest Frobenius error.

pyfaust runs 500 PALM iterations per (local and global) stage by default; `n_iter` lowers that for large
matrices, where a single factorisation of a 256×1024 matrix takes minutes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse

from weightspace.structured.approximation import (
    Approximation,
    as_matrix,
    resolve_budget,
)

DISTRIBUTIONS = ("linear", "exponential")
DEFAULT_N_ITER = 500  # pyfaust's default StoppingCriterion (num_its=500)


@dataclass(frozen=True, eq=False)
class SparseFactors:
    """W̃ = factors[0] @ factors[1] @ ⋯ @ factors[-1], each a scipy CSR matrix without stored zeros."""

    factors: tuple

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("a product of sparse matrices needs at least one factor")
        for left, right in zip(self.factors[:-1], self.factors[1:]):
            if left.shape[1] != right.shape[0]:
                raise ValueError(
                    f"factor shapes do not chain: {left.shape} @ {right.shape}"
                )

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.factors[0].shape[0]), int(self.factors[-1].shape[1]))

    @property
    def nnz(self) -> tuple[int, ...]:
        return tuple(int(f.nnz) for f in self.factors)

    @property
    def n_params(self) -> int:
        return int(sum(self.nnz))

    def to_dense(self) -> np.ndarray:
        # Multiply from the right so the intermediate products stay (q × cols) at most.
        prod = self.factors[-1].toarray()
        for factor in reversed(self.factors[:-1]):
            prod = factor @ prod
        return np.asarray(prod, dtype=np.float64)


def factor_shapes(shape: tuple[int, int], n_factors: int) -> list[tuple[int, int]]:
    """(rows × q), (q × q)^{J−2}, (q × cols) with q = max(rows, cols)."""
    if n_factors < 2:
        raise ValueError(
            f"a PSM approximation needs at least 2 factors, got {n_factors}"
        )
    rows, cols = (int(v) for v in shape)
    q = max(rows, cols)
    return [(rows, q)] + [(q, q)] * (n_factors - 2) + [(q, cols)]


def _exponential_rate(start: float, last: int, steps: int) -> float:
    """μ with start·e^{μ·steps} = last; the original clamps tiny ratios to μ = −14/steps."""
    ratio = last / start
    return math.log(ratio) / steps if ratio > 1e-6 else -14.0 / steps


def nnz_allocation(
    total: int, last: int, n_factors: int, distribution: str = "linear"
) -> list[int]:
    """Nonzeros per factor (left to right) for T = total nonzeros, L = last for the last factor.

    J = 2: [T − L, L]. J > 2, linear: n_i = int(α + i·(L − α)/(J − 1)) with α = 2T/J − L (an arithmetic
    progression from α to L whose sum is T); exponential: n_i = int(α·e^{μi}) with μ = log(L/α)/(J − 1)
    and α ∈ [1, T] from a bounded scalar search for Σ α e^{μi} = T. Rounding excess is taken off the
    largest entry until Σ ≤ T. If any entry is negative (linear with L > 2T/J), every factor gets 0,
    as the original does; such an allocation yields the zero matrix.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"unknown nonzero distribution {distribution!r}; use one of {DISTRIBUTIONS}"
        )
    if n_factors < 2:
        raise ValueError(
            f"a PSM approximation needs at least 2 factors, got {n_factors}"
        )
    total, last = int(total), int(last)
    if n_factors == 2:
        counts = [total - last, last]
    elif distribution == "linear":
        alpha = 2 * total / n_factors - last
        slope = (last - alpha) / (n_factors - 1)
        counts = [int(alpha + slope * i) for i in range(n_factors)]
    else:
        steps = n_factors - 1

        def mismatch(alpha: float) -> float:
            rate = _exponential_rate(alpha, last, steps)
            return abs(
                sum(alpha * math.exp(rate * i) for i in range(n_factors)) - total
            )

        # The bounded search needs a non-empty interval; T ≤ 1 leaves only α = 1.
        if total > 1:
            alpha = float(
                scipy.optimize.minimize_scalar(
                    mismatch, bounds=(1, total), method="bounded"
                ).x
            )
        else:
            alpha = 1.0
        rate = _exponential_rate(alpha, last, steps)
        counts = [int(alpha * math.exp(rate * i)) for i in range(n_factors)]
    excess = sum(counts) - total
    while excess > 0:
        counts[counts.index(max(counts))] -= excess
        excess = sum(counts) - total
    if any(c < 0 for c in counts):
        counts = [0] * n_factors
    return counts


def _to_csr(factor) -> scipy.sparse.csr_matrix:
    mat = scipy.sparse.csr_matrix(factor, dtype=np.float64)
    mat.eliminate_zeros()
    return mat


def factorise(
    weight, allocation: list[int], *, n_iter: int = DEFAULT_N_ITER
) -> SparseFactors | None:
    """pyfaust hierarchical factorisation with the given nonzeros per factor; None if it fails.

    An allocation with an empty factor gives the zero product, so pyfaust (which cannot normalise an
    all-zero factor and fails) is not called then.
    """
    from pyfaust.fact import hierarchical
    from pyfaust.factparams import ParamsHierarchical, StoppingCriterion
    from pyfaust.proj import sp

    mat = as_matrix(weight)
    n_factors = len(allocation)
    shapes = factor_shapes(mat.shape, n_factors)
    if min(allocation) <= 0 or mat.size == 0:
        return None
    cols = mat.shape[1]
    fact_cons = [
        sp(shapes[i], int(allocation[i]), normalized=True) for i in range(n_factors - 1)
    ]
    # The residual after peeling factor i is (q × cols) and is constrained like factor i+1.
    res_cons = [
        sp((shapes[i][1], cols), int(allocation[i + 1]), normalized=True)
        for i in range(n_factors - 1)
    ]
    params = ParamsHierarchical(
        fact_cons,
        res_cons,
        StoppingCriterion(num_its=int(n_iter)),
        StoppingCriterion(num_its=int(n_iter)),
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            faust = hierarchical(np.ascontiguousarray(mat), params, backend=2016)
        factors = tuple(_to_csr(faust.factors(i)) for i in range(faust.numfactors()))
    except Exception:  # pyfaust raises a bare Exception on failed factorisations
        return None
    if len(factors) != n_factors:
        return None
    result = SparseFactors(factors)
    if any(got > want for got, want in zip(result.nnz, allocation)):
        raise RuntimeError(
            f"pyfaust returned {result.nnz} nonzeros for an allocation of {allocation}"
        )
    if not np.all(np.isfinite(result.to_dense())):
        return None
    return result


def approximate_psm(
    weight,
    share: float | None = None,
    *,
    n_factors: int = 2,
    distribution: str = "linear",
    n_steps: int = 9,
    max_last_share: float = 0.9,
    n_iter: int = DEFAULT_N_ITER,
    budget: int | None = None,
) -> Approximation:
    """PSM approximation with J = n_factors sparse factors and at most ⌊share·size⌋ nonzeros in total.

    Tries ℓ ∈ linspace(0.1, max_last_share, n_steps) for the last factor's share of the nonzeros and keeps
    the lowest ‖W − W̃‖_F (the first on ties). A failed factorisation counts as the zero matrix with 0
    parameters. n_params is the allocated nonzero count (the original's charge, ≤ budget);
    info["nnz"] holds the nonzeros actually stored per factor (≤ the allocation).
    """
    mat = as_matrix(weight)
    total = resolve_budget(mat.shape, share, budget)
    info = {
        "budget": total,
        "share": None if share is None else float(share),
        "n_factors": int(n_factors),
        "distribution": distribution,
        "n_iter": int(n_iter),
    }
    best, best_err, tried = None, np.inf, []
    for ell in np.linspace(0.1, max_last_share, n_steps):
        allocation = nnz_allocation(total, int(ell * total), n_factors, distribution)
        factors = factorise(mat, allocation, n_iter=n_iter)
        dense = factors.to_dense() if factors is not None else np.zeros_like(mat)
        err = float(np.linalg.norm(mat - dense))
        tried.append((float(ell), tuple(allocation), err))
        if best is None or err < best_err:
            best, best_err = (float(ell), allocation, factors, dense), err
    ell, allocation, factors, dense = best
    if factors is None:
        info.update(
            last_share=ell,
            allocation=tuple(allocation),
            nnz=(0,) * n_factors,
            search=tuple(tried),
        )
        return Approximation(np.zeros_like(mat), 0, None, "PSM", info)
    info.update(
        last_share=ell,
        allocation=tuple(allocation),
        nnz=factors.nnz,
        search=tuple(tried),
    )
    return Approximation(dense, int(sum(allocation)), factors, "PSM", info)


def approximate_psm_search(
    weight,
    share: float | None = None,
    *,
    factor_counts=(2, 3),
    distributions=("linear",),
    n_steps: int = 17,
    max_last_share: float = 0.9,
    n_iter: int = DEFAULT_N_ITER,
    budget: int | None = None,
) -> Approximation:
    """The PSM wrapper: every J in factor_counts × distribution, keep the lowest ‖W − W̃‖_F.

    The original wrapper ignores its max_last_share argument (always 0.9); here it is forwarded
    (spec §11.4), with the same default. For J = 2 the distribution is irrelevant and tried once.
    """
    mat = as_matrix(weight)
    best, best_err, tried = None, np.inf, []
    for n_factors in factor_counts:
        for distribution in distributions[:1] if n_factors == 2 else distributions:
            approx = approximate_psm(
                mat,
                share,
                n_factors=n_factors,
                distribution=distribution,
                n_steps=n_steps,
                max_last_share=max_last_share,
                n_iter=n_iter,
                budget=budget,
            )
            err = float(np.linalg.norm(mat - approx.dense))
            tried.append((int(n_factors), distribution, err))
            if best is None or err < best_err:
                best, best_err = approx, err
    return Approximation(
        best.dense,
        best.n_params,
        best.structure,
        best.method,
        {**best.info, "variants": tuple(tried)},
    )
