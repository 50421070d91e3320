"""Structured (SSS, low-rank, ...) weight matrices for last layers (Kissel & Diepold, ESANN 2022; survey 2023)."""

from weightspace.structured.approximation import Approximation, param_budget, resolve_budget
from weightspace.structured.layers import LowRankLayer, SSSLayer
from weightspace.structured.low_rank import (
    LowRankFactors,
    approximate_low_rank,
    low_rank_rank,
    truncated_svd_factors,
)
from weightspace.structured.displacement import approximate_ldr, approximate_toeplitz_like
from weightspace.structured.hierarchical import (
    approximate_hedlr,
    approximate_hmat,
    approximate_hmat_search,
    approximate_hodlr,
)
from weightspace.structured.psm import approximate_psm, approximate_psm_search
from weightspace.structured.structured_layers import HMatLayer, LDRLayer, PSMLayer, TLLayer
from weightspace.structured.sss import (
    SSSRealisation,
    approximate_sss,
    approximate_sss_search,
    identify_sss,
    max_state_dim,
    random_realisation,
    sss_param_count,
    stage_grid,
    stage_sizes,
)

__all__ = [
    "Approximation",
    "HMatLayer",
    "LDRLayer",
    "PSMLayer",
    "TLLayer",
    "approximate_hedlr",
    "approximate_hmat",
    "approximate_hmat_search",
    "approximate_hodlr",
    "approximate_ldr",
    "approximate_psm",
    "approximate_psm_search",
    "approximate_toeplitz_like",
    "resolve_budget",
    "LowRankFactors",
    "LowRankLayer",
    "SSSLayer",
    "SSSRealisation",
    "approximate_low_rank",
    "approximate_sss",
    "approximate_sss_search",
    "identify_sss",
    "low_rank_rank",
    "max_state_dim",
    "param_budget",
    "random_realisation",
    "sss_param_count",
    "stage_grid",
    "stage_sizes",
    "truncated_svd_factors",
]
