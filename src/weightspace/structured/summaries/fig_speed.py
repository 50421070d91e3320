"""structured_fig_speed: medians of the timed matrix-vector products per shape, backend,
batch, layer and share, and the claims (SSS faster than dense at small shares)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightspace.structured.summaries.common import claim

SPEED_KEYS = ["shape", "backend", "batch", "layer", "share"]
BACKEND_NAMES = {
    "torch": "PyTorch",
    "c_O0": "C -O0",
    "c_O1": "C -O1",
    "c_O2": "C -O2",
    "c_O3": "C -O3",
    "c_Os": "C -Os",
}


def speed_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Median over iterations of the per-matvec time, per (shape, backend, batch, layer,
    share).

    Backends: "torch" (PyTorch) and "c_<level>" (the C reference built at -<level>). The
    dense layer does not depend on the share; rows timed once (empty share) are repeated
    at every share of the SSS rows of the same shape, backend and batch, so every share
    has a dense and an SSS row.
    """
    rows = rows.copy()
    for col in ("seconds_mean", "flops", "in_features"):
        if col not in rows:
            rows[col] = np.nan
    extremes = {f"seconds_{s}": ("seconds_per_matvec", s) for s in ("min", "max")}
    # one value per group: the layer's size and the matrix shape
    first = ("n_params", "state_dim", "flops", "in_features", "rows", "cols")
    first += ("n_stages",)
    summary = (
        rows.groupby(SPEED_KEYS, sort=False, dropna=False)
        .agg(
            seconds_per_matvec=("seconds_per_matvec", "median"),
            **extremes,
            seconds_mean=("seconds_mean", "median"),
            **{k: (k, "first") for k in first},
        )
        .reset_index()
    )
    once = summary["share"].isna()
    sss = summary.loc[
        summary["layer"] == "sss", ["shape", "backend", "batch", "share"]
    ].drop_duplicates()
    spread = (
        summary[once].drop(columns="share").merge(sss, on=["shape", "backend", "batch"])
    )
    out = pd.concat([summary[~once], spread], ignore_index=True)
    return out.sort_values(
        SPEED_KEYS, kind="stable", key=_speed_order(out)
    ).reset_index(drop=True)


def _speed_order(frame: pd.DataFrame):
    """Sort key: shapes and backends in order of appearance, the rest by value."""
    order = {
        col: {v: i for i, v in enumerate(dict.fromkeys(frame[col]))}
        for col in ("shape", "backend")
    }

    def key(col: pd.Series) -> pd.Series:
        return col.map(order[col.name]) if col.name in order else col

    return key


def _ratios(grp: pd.DataFrame) -> pd.Series:
    """SSS/dense time per share, leaving out shares where the SSS approximation is the
    zero matrix (no state dimension d >= 1 fits the budget: the layer does no work)."""
    real = grp[(grp["layer"] == "sss") & (grp["n_params"] > 0)]["share"]
    grp = grp[grp["share"].isin(real)]
    dense = grp[grp["layer"] == "dense"].set_index("share")["seconds_per_matvec"]
    sss = grp[grp["layer"] == "sss"].set_index("share")["seconds_per_matvec"]
    return (sss / dense).dropna().sort_index()


def _spearman(ratio: pd.Series) -> float:
    if len(ratio) < 2:
        return float("nan")
    return float(
        pd.Series(ratio.index).corr(pd.Series(ratio.to_numpy()), method="spearman")
    )


def speed_claims(summary: pd.DataFrame) -> list[dict]:
    """Per shape: the C reference (all its builds in one claim each) and PyTorch per
    batch size.

    "faster": SSS/dense time < 1 at the smallest share with d >= 1; "ratio": the
    SSS/dense time ratio decreases as the share decreases (Spearman ρ(share, ratio) > 0
    over the shares with d >= 1); "flops": the SSS flop count is below the dense 2kF at
    the smallest share with d >= 1.
    """
    claims = []
    for shape, by_shape in summary.groupby("shape", sort=False):
        claims += _c_claims(shape, by_shape)
        claims += _flop_claims(shape, by_shape)
        claims += _torch_claims(shape, by_shape)
    return claims


def _c_claims(shape: str, by_shape: pd.DataFrame) -> list[dict]:
    """ "faster" and "ratio" of the C reference, all its builds in one claim each."""
    c_backends = [
        b for b in dict.fromkeys(by_shape["backend"]) if str(b).startswith("c_")
    ]
    ratios = {b: _ratios(by_shape[by_shape["backend"] == b]) for b in c_backends}
    ratios = {b: r for b, r in ratios.items() if not r.empty}
    if not ratios:
        return []
    names = {b: BACKEND_NAMES.get(b, b) for b in ratios}
    first = {b: r.index.min() for b, r in ratios.items()}
    rhos = {b: _spearman(r) for b, r in ratios.items()}
    return [
        claim(
            "SSS faster than dense in C at the smallest share with d ≥ 1 "
            f"({shape}, one vector)",
            "SSS faster than dense at small shares (ESANN, C benchmark)",
            "; ".join(
                f"{names[b]}: SSS/dense time {r.loc[first[b]]:.3f} at share "
                f"{first[b]:g} (largest share {r.index.max():g}: {r.iloc[-1]:.3f})"
                for b, r in ratios.items()
            ),
            all(r.loc[first[b]] < 1 for b, r in ratios.items()),
        ),
        claim(
            f"SSS/dense time ratio decreases as the share decreases, C ({shape})",
            "ratio decreases as the share decreases (spec §13)",
            "; ".join(
                f"{names[b]}: Spearman ρ(share, ratio) = {rhos[b]:.2f} over "
                f"{len(ratios[b])} shares"
                for b in ratios
            ),
            all(rho > 0 for rho in rhos.values()),
        ),
    ]


def _flop_claims(shape: str, by_shape: pd.DataFrame) -> list[dict]:
    """ "flops": the SSS flop count against the dense 2kF."""
    sss = by_shape[(by_shape["layer"] == "sss") & (by_shape["n_params"] > 0)]
    sss = sss.dropna(subset=["flops"])
    dense = by_shape[by_shape["layer"] == "dense"].dropna(subset=["flops"])
    if sss.empty or dense.empty:
        return []
    first = sss.sort_values("share").iloc[0]
    dense_flops = float(dense["flops"].iloc[0])
    per_share = sss.drop_duplicates("share").set_index("share")["flops"].sort_index()
    below = int((per_share < dense_flops).sum())
    return [
        claim(
            f"SSS matvec flop count below the dense 2kF at small shares ({shape})",
            "SSS flops below dense at small shares (spec §13)",
            f"SSS {int(first['flops']):,} vs dense {int(dense_flops):,} flops "
            f"({first['flops'] / dense_flops:.1%}) at share {first['share']:g}; "
            f"below dense at {below} of {len(per_share)} shares with d ≥ 1",
            first["flops"] < dense_flops,
        )
    ]


def _torch_claims(shape: str, by_shape: pd.DataFrame) -> list[dict]:
    """ "faster" and "ratio" of PyTorch, per batch size."""
    claims = []
    torch_rows = by_shape[by_shape["backend"] == "torch"]
    for batch, grp in torch_rows.groupby("batch", sort=True):
        ratio = _ratios(grp)
        if ratio.empty:
            continue
        smallest = ratio.index.min()
        where = f"(PyTorch, {shape}, batch {batch})"
        claims.append(
            claim(
                f"SSS faster than dense at the smallest share with d ≥ 1 {where}",
                "SSS faster than dense at small shares (ESANN, C benchmark)",
                f"SSS/dense time {ratio.loc[smallest]:.2f} at share {smallest:g}",
                ratio.loc[smallest] < 1,
            )
        )
        rho = _spearman(ratio)
        claims.append(
            claim(
                f"SSS/dense time ratio decreases as the share decreases {where}",
                "ratio decreases as the share decreases (spec §13)",
                f"Spearman ρ(share, ratio) = {rho:.2f} over {len(ratio)} shares",
                rho > 0,
            )
        )
    return claims
