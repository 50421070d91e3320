"""Structured (SSS, low-rank, ...) weight matrices for last layers (Kissel & Diepold, ESANN 2022; survey 2023)."""

from weightspace.structured.approximation import Approximation, param_budget
from weightspace.structured.layers import LowRankLayer, SSSLayer
from weightspace.structured.low_rank import (
    LowRankFactors,
    approximate_low_rank,
    low_rank_rank,
    truncated_svd_factors,
)
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
