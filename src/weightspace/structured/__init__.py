"""Structured (SSS, low-rank, ...) weight matrices for last layers (Kissel & Diepold, ESANN 2022; survey 2023).

The names below load their module on first use: the approximators and layers import torch and pyfaust
(seconds), which jobs that only tabulate or plot results (``summaries``) never need.
"""

from weightspace.lazy import lazy_attributes

_LAZY = {
    "approximation": ["Approximation", "param_budget", "resolve_budget"],
    "displacement": ["approximate_ldr", "approximate_toeplitz_like"],
    "hierarchical": ["approximate_hedlr", "approximate_hmat", "approximate_hmat_search", "approximate_hodlr"],
    "layers": ["LowRankLayer", "SSSLayer"],
    "low_rank": ["LowRankFactors", "approximate_low_rank", "low_rank_rank", "truncated_svd_factors"],
    "psm": ["approximate_psm", "approximate_psm_search"],
    "sss": ["SSSRealisation", "approximate_sss", "approximate_sss_search", "identify_sss", "max_state_dim",
            "random_realisation", "sss_param_count", "stage_grid", "stage_sizes"],
    "structured_layers": ["HMatLayer", "LDRLayer", "PSMLayer", "TLLayer"],
}
__getattr__ = lazy_attributes(__name__, _LAZY, globals())

__all__ = sorted(name for names in _LAZY.values() for name in names)
