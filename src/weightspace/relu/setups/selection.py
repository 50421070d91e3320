"""The best learning rate per setting and the numbers of relu_table_setups and
relu_fig_setups computed from it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from weightspace.relu.setups.result import SetupResult


def best_lr_result(results: Iterable[SetupResult]) -> SetupResult | None:
    """The finished run with the lowest mean best_valid_rmse (None if every lr diverged)."""
    ok = [r for r in results if r.ok and np.isfinite(r.mean("best_valid_rmse"))]
    return min(ok, key=lambda r: r.mean("best_valid_rmse")) if ok else None


def best_by_setting(results: Iterable[SetupResult]) -> dict[tuple, SetupResult]:
    """Best-lr result per (parameterisation, optimizer, bias_init, distribution)."""
    groups: dict[tuple, list[SetupResult]] = {}
    for r in results:
        groups.setdefault(r.config.setting, []).append(r)
    out = {}
    for key, group in groups.items():
        best = best_lr_result(group)
        if best is not None:
            out[key] = best
    return out


def mean_and_se(
    result: SetupResult, metric: str = "best_test_rmse"
) -> tuple[float, float]:
    """Mean over nets and its standard error std/√(P−1) (std unbiased), as the paper's table."""
    return result.mean(metric), result.std(metric) / math.sqrt(
        max(result.n_nets - 1, 1)
    )


def setups_table(
    best: Mapping[tuple, SetupResult],
    distributions: Sequence[str],
    metric: str = "best_test_rmse",
    factor: float = 1e4,
) -> list[dict]:
    """Rows of relu_table_setups: per (parameterisation, optimizer, bias_init), per distribution
    the mean and SE × factor (rounded) and a shade in [0, 100]: the cell's log-RMSE position
    between the column's best (0) and worst (100). Settings without a result are left out.
    """
    rows_keys = sorted({k[:3] for k in best})
    col_logs = {}
    for dist in distributions:
        logs = [
            math.log(best[(*rk, dist)].mean(metric))
            for rk in rows_keys
            if (*rk, dist) in best
        ]
        col_logs[dist] = (min(logs), max(logs)) if logs else None
    rows = []
    for rk in rows_keys:
        cells = {}
        for dist in distributions:
            r = best.get((*rk, dist))
            if r is None:
                continue
            mean, se = mean_and_se(r, metric)
            lo, hi = col_logs[dist]
            shade = 0.0 if hi == lo else (math.log(mean) - lo) / (hi - lo)
            cells[dist] = {
                "mean": mean,
                "se": se,
                "mean_scaled": int(round(factor * mean)),
                "se_scaled": int(round(factor * se)),
                "shade": int(100 * shade),
                "lr": r.config.lr,
            }
        if cells:
            rows.append(
                {
                    "parameterisation": rk[0],
                    "optimizer": rk[1],
                    "bias_init": rk[2],
                    "cells": cells,
                }
            )
    return rows


def relative_curves(
    best: Mapping[tuple, SetupResult],
    parameterisation: str,
    optimizer: str,
    bias_inits: Sequence[str],
    dims: Sequence[int],
    baseline: str = "zero",
    metric: str = "best_test_rmse",
) -> dict[str, dict]:
    """One panel of relu_fig_setups: per bias init, mean and SE relative to the baseline's mean
    on rad-distr-d for each d (NaN where a result is missing)."""

    def get(bias, d):
        return best.get((parameterisation, optimizer, bias, f"rad-distr-{d}"))

    base = [get(baseline, d) for d in dims]
    curves = {}
    for bias in bias_inits:
        means, ses = [], []
        for d, b in zip(dims, base):
            r = get(bias, d)
            if r is None or b is None:
                means.append(float("nan"))
                ses.append(float("nan"))
                continue
            m, se = mean_and_se(r, metric)
            ref = b.mean(metric)
            means.append(m / ref)
            ses.append(se / ref)
        curves[bias] = {"dims": list(dims), "mean": means, "se": ses}
    return curves
