"""Structured (SSS, low-rank, ...) weight matrices for last layers (Kissel & Diepold,
ESANN 2022; survey 2023).

Modules, following the specification's sections:
- `approximation`: the Approximation type and the parameter budget (§2);
- `sss` (the SSS realisation from Hankel blocks), `low_rank`, `psm`, `displacement`
  (Toeplitz-like, TD-LDR) and `hierarchical`: one approximator per structure (§3);
- `layers`: the trainable layers, one module per structure on one base class (§4);
- `approximators`: approximators chosen by a config spec; the test-matrix benchmark;
- `test_matrices`: the survey's test-matrix families (§7);
- `features`: penultimate features and the last layer of a classifier (§6);
- `finetuning`: the ESANN and survey fine-tuning protocols (§5);
- `speed`, `cspeed`: the dense-vs-SSS timing in PyTorch and in C (§8);
- `summaries`: tables and claims, one module per target; `config`: config checks.

The names below load their module on first use: the approximators and layers import
torch and pyfaust (seconds), which jobs that only tabulate or plot results
(`summaries`) never need.
"""

from weightspace.lazy import lazy_attributes

_LAZY = {
    "approximation": ["Approximation", "param_budget", "resolve_budget"],
    "displacement": ["approximate_ldr", "approximate_toeplitz_like"],
    "hierarchical": [
        "approximate_by_depth",
        "approximate_hedlr",
        "approximate_hmat",
        "approximate_hmat_search",
        "approximate_hodlr",
    ],
    "layers.base": ["StructuredLayer"],
    "layers.displacement": ["LDRLayer", "TLLayer"],
    "layers.hierarchical": ["HMatLayer"],
    "layers.low_rank": ["LowRankLayer"],
    "layers.psm": ["PSMLayer"],
    "layers.sss": ["SSSLayer"],
    "low_rank": [
        "LowRankFactors",
        "approximate_low_rank",
        "low_rank_rank",
        "truncated_svd_factors",
    ],
    "psm": ["approximate_psm", "approximate_psm_search"],
    "sss": [
        "SSSRealisation",
        "approximate_sss",
        "approximate_sss_search",
        "identify_sss",
        "max_state_dim",
        "random_realisation",
        "sss_param_count",
        "stage_grid",
        "stage_sizes",
    ],
}
__getattr__ = lazy_attributes(__name__, _LAZY, globals())

__all__ = sorted(name for names in _LAZY.values() for name in names)
