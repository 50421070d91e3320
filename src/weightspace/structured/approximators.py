"""Approximators chosen by a small spec dict, as in the config (spec §7), and the rows
of the test-matrix benchmark (structured_table_testmatrices).

Approximator specs (dicts with "method" and its options):
    lr                         low rank (Eckart–Young)
    sss, n_stages K            SSS with fixed K
    sss_search, n_steps s      the SSS wrapper (K over linspace(min/10, min/2, s))
    psm, n_factors J, distribution (linear or exponential), n_steps s
    psm_search, factor_counts [J...], n_steps s
                               the PSM wrapper (linear allocation)
    hmat_search                the HMat wrapper
    tl                         Toeplitz-like (square matrices only)
"""

from __future__ import annotations

import time

import numpy as np

from weightspace.structured.approximation import Approximation, as_matrix
from weightspace.structured.displacement import approximate_toeplitz_like
from weightspace.structured.hierarchical import approximate_hmat_search
from weightspace.structured.low_rank import approximate_low_rank
from weightspace.structured.psm import approximate_psm, approximate_psm_search
from weightspace.structured.sss import approximate_sss, approximate_sss_search

METHODS = ("lr", "sss", "sss_search", "psm", "psm_search", "hmat_search", "tl")
LABELS = {
    "lr": "LR",
    "sss": "SSS",
    "sss_search": "SSS",
    "psm": "PSM",
    "psm_search": "PSM",
    "hmat_search": "HMat",
    "tl": "TL",
}


def approximate(
    weight,
    share: float,
    spec: dict,
    *,
    psm_iterations: int = 500,
    sss_esann_off_by_one: bool = False,
    sss_exact_count: bool = False,
) -> Approximation:
    """The approximation of W at `share` by the approximator that `spec` names (see the
    module doc)."""
    mat = as_matrix(weight)
    method = spec["method"]
    sss_kw = {"esann_off_by_one": sss_esann_off_by_one, "exact_count": sss_exact_count}
    if method == "lr":
        return approximate_low_rank(mat, share)
    if method == "sss":
        return approximate_sss(mat, share, int(spec["n_stages"]), **sss_kw)
    if method == "sss_search":
        return approximate_sss_search(mat, share, int(spec["n_steps"]), **sss_kw)
    if method == "psm":
        return approximate_psm(
            mat,
            share,
            n_factors=int(spec["n_factors"]),
            distribution=spec["distribution"],
            n_steps=int(spec["n_steps"]),
            n_iter=psm_iterations,
        )
    if method == "psm_search":
        return approximate_psm_search(
            mat,
            share,
            factor_counts=tuple(spec["factor_counts"]),
            n_steps=int(spec["n_steps"]),
            n_iter=psm_iterations,
        )
    if method == "hmat_search":
        return approximate_hmat_search(mat, share)
    if method == "tl":
        return approximate_toeplitz_like(mat, share)
    raise ValueError(
        f"unknown approximation method {method!r}; known: {', '.join(METHODS)}"
    )


def matrix_benchmark_rows(
    matrices: list[tuple[str, np.ndarray]], shares, approximators: list[dict], **options
) -> list[dict]:
    """One row per (matrix, share, approximator): relative Frobenius error and parameter
    count. `matrices` holds (label, matrix) pairs; approximators are dicts with "name"
    plus a spec."""
    rows = []
    for label, mat in matrices:
        for share in shares:
            budget = int(share * mat.size)
            for spec in approximators:
                start = time.perf_counter()
                approx = approximate(mat, share, spec, **options)
                rows.append(
                    {
                        "matrix": label,
                        "share": float(share),
                        "approximator": spec["name"],
                        "rel_error": approx.relative_error(mat),
                        "n_params": int(approx.n_params),
                        "budget": budget,
                        "seconds": time.perf_counter() - start,
                    }
                )
    return rows
