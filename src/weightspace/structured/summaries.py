"""Tables and claims of the structured-layer targets (pure pandas; scripts read and write the files).

Every claims function returns a list of {claim, published, reproduced, holds}. The papers' numbers are
read from the PDFs and not reproduced here (spec §1), so "published" states the qualitative expectation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# which approximator is expected to recover which test-matrix family exactly (spec §13)
MATCHING = {"low_rank": "LR", "sss": "SSS", "ldr_toeplitz": "TL", "hierarchical": "HMat"}


def _claim(claim: str, published: str, reproduced: str, holds: bool) -> dict:
    return {"claim": claim, "published": published, "reproduced": reproduced, "holds": bool(holds)}


def matrix_benchmark_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean relative error and parameter count per (family, share, approximator), matrices averaged."""
    return (rows.groupby(["family", "share", "approximator"], sort=False)
            .agg(rel_error=("rel_error", "mean"), n_params=("n_params", "mean"), budget=("budget", "first"),
                 matrices=("rel_error", "size"))
            .reset_index())


def matrix_benchmark_claims(table: pd.DataFrame, tol: float = 1e-6) -> list[dict]:
    claims = []
    top = table["share"].max()
    for family, method in MATCHING.items():
        cells = table[(table["family"] == family) & (table["share"] == top)]
        rows = cells[cells["approximator"] == method]
        if rows.empty:
            continue
        err = float(rows["rel_error"].iloc[0])
        best = cells.loc[cells["rel_error"].idxmin()]
        wins = err <= float(best["rel_error"]) + tol
        claims.append(_claim(f"{method} is the best approximator of the {family} family (share {top:g})",
                             "each structure wins on its own family",
                             f"{method} rel. error {err:.2e}{' (exact)' if err < tol else ''}; best "
                             f"{best['approximator']} {float(best['rel_error']):.2e}", wins))
    rnd = table[table["family"] == "random"]
    if not rnd.empty:
        wins, total = 0, 0
        for share, grp in rnd.groupby("share"):
            best = grp.loc[grp["rel_error"].idxmin(), "approximator"]
            wins += best == "LR"
            total += 1
        winners = ", ".join(sorted(set(rnd.loc[rnd.groupby("share")["rel_error"].idxmin(), "approximator"])))
        claims.append(_claim("LR gives the lowest error on i.i.d. random matrices (spec §13 expectation)",
                             "Eckart–Young: LR optimal among matrices of its rank (spec §13)",
                             f"LR best at {wins} of {total} shares (best: {winners})", wins == total))
    over = table[table["n_params"] > table["budget"]]
    claims.append(_claim("every approximation fits its parameter budget", "count ≤ ⌊s·n²⌋",
                         f"{len(over)} of {len(table)} cells over budget", over.empty))
    mono, bad = [], []
    for (family, method), grp in table[table["approximator"].isin(["LR", "TL", "HMat"])].groupby(
            ["family", "approximator"]):
        errs = grp.sort_values("share")["rel_error"].to_numpy()
        mono.append(bool(np.all(np.diff(errs) <= 1e-9)))
        if not mono[-1]:
            bad.append(f"{method} on {family}")
    claims.append(_claim("errors do not increase with the share (LR, TL, HMat)", "spec §13",
                         f"{sum(mono)} of {len(mono)} (family, method) curves non-increasing"
                         + (f"; not: {', '.join(bad)}" if bad else ""), all(mono)))
    return claims


SPEED_KEYS = ["shape", "backend", "batch", "layer", "share"]
BACKEND_NAMES = {"torch": "PyTorch", "c_O0": "C -O0", "c_O1": "C -O1", "c_O2": "C -O2", "c_O3": "C -O3",
                 "c_Os": "C -Os"}


def speed_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Median over iterations of the per-matvec time, per (shape, backend, batch, layer, share).

    Backends: "torch" (PyTorch) and "c_<level>" (the C reference built at -<level>). The dense layer does not depend on the share; rows timed
    once (empty share) are repeated at every share of the SSS rows of the same shape, backend and
    batch, so every share has a dense and an SSS row.
    """
    rows = rows.copy()
    for col in ("seconds_mean", "flops", "in_features"):
        if col not in rows:
            rows[col] = np.nan
    summary = (rows.groupby(SPEED_KEYS, sort=False, dropna=False)
               .agg(seconds_per_matvec=("seconds_per_matvec", "median"), seconds_min=("seconds_per_matvec", "min"),
                    seconds_max=("seconds_per_matvec", "max"), seconds_mean=("seconds_mean", "median"),
                    n_params=("n_params", "first"), state_dim=("state_dim", "first"), flops=("flops", "first"),
                    in_features=("in_features", "first"), rows=("rows", "first"), cols=("cols", "first"),
                    n_stages=("n_stages", "first"))
               .reset_index())
    once = summary["share"].isna()
    sss = summary.loc[summary["layer"] == "sss", ["shape", "backend", "batch", "share"]].drop_duplicates()
    spread = summary[once].drop(columns="share").merge(sss, on=["shape", "backend", "batch"])
    out = pd.concat([summary[~once], spread], ignore_index=True)
    return out.sort_values(SPEED_KEYS, kind="stable", key=_speed_order(out)).reset_index(drop=True)


def _speed_order(frame: pd.DataFrame):
    """Sort key: shapes and backends in order of appearance, the rest by value."""
    order = {col: {v: i for i, v in enumerate(dict.fromkeys(frame[col]))} for col in ("shape", "backend")}

    def key(col: pd.Series) -> pd.Series:
        return col.map(order[col.name]) if col.name in order else col
    return key


def _ratios(grp: pd.DataFrame) -> pd.Series:
    """SSS/dense time per share, leaving out shares where the SSS approximation is the zero matrix
    (no state dimension d >= 1 fits the budget: the layer does no work)."""
    real = grp[(grp["layer"] == "sss") & (grp["n_params"] > 0)]["share"]
    grp = grp[grp["share"].isin(real)]
    dense = grp[grp["layer"] == "dense"].set_index("share")["seconds_per_matvec"]
    sss = grp[grp["layer"] == "sss"].set_index("share")["seconds_per_matvec"]
    return (sss / dense).dropna().sort_index()


def _spearman(ratio: pd.Series) -> float:
    if len(ratio) < 2:
        return float("nan")
    return float(pd.Series(ratio.index).corr(pd.Series(ratio.to_numpy()), method="spearman"))


def speed_claims(summary: pd.DataFrame) -> list[dict]:
    """Per shape: the C reference (all its builds in one claim each) and PyTorch per batch size.

    "faster": SSS/dense time < 1 at the smallest share with d >= 1; "ratio": the SSS/dense time ratio
    decreases as the share decreases (Spearman ρ(share, ratio) > 0 over the shares with d >= 1);
    "flops": the SSS flop count is below the dense 2kF at the smallest share with d >= 1.
    """
    claims = []
    for shape, by_shape in summary.groupby("shape", sort=False):
        c_backends = [b for b in dict.fromkeys(by_shape["backend"]) if str(b).startswith("c_")]
        ratios = {b: _ratios(by_shape[by_shape["backend"] == b]) for b in c_backends}
        ratios = {b: r for b, r in ratios.items() if not r.empty}
        if ratios:
            names = {b: BACKEND_NAMES.get(b, b) for b in ratios}
            first = {b: r.index.min() for b, r in ratios.items()}
            claims.append(_claim(
                f"SSS faster than dense in C at the smallest share with d ≥ 1 ({shape}, one vector)",
                "SSS faster than dense at small shares (ESANN, C benchmark)",
                "; ".join(f"{names[b]}: SSS/dense time {r.loc[first[b]]:.3f} at share {first[b]:g} "
                          f"(largest share {r.index.max():g}: {r.iloc[-1]:.3f})" for b, r in ratios.items()),
                all(r.loc[first[b]] < 1 for b, r in ratios.items())))
            rhos = {b: _spearman(r) for b, r in ratios.items()}
            claims.append(_claim(
                f"SSS/dense time ratio decreases as the share decreases, C ({shape})",
                "ratio decreases as the share decreases (spec §13)",
                "; ".join(f"{names[b]}: Spearman ρ(share, ratio) = {rhos[b]:.2f} over {len(ratios[b])} shares"
                          for b in ratios),
                all(rho > 0 for rho in rhos.values())))
        sss = by_shape[(by_shape["layer"] == "sss") & (by_shape["n_params"] > 0)].dropna(subset=["flops"])
        dense = by_shape[by_shape["layer"] == "dense"].dropna(subset=["flops"])
        if not sss.empty and not dense.empty:
            first = sss.sort_values("share").iloc[0]
            dense_flops = float(dense["flops"].iloc[0])
            per_share = sss.drop_duplicates("share").set_index("share")["flops"].sort_index()
            below = int((per_share < dense_flops).sum())
            claims.append(_claim(
                f"SSS matvec flop count below the dense 2kF at small shares ({shape})",
                "SSS flops below dense at small shares (spec §13)",
                f"SSS {int(first['flops']):,} vs dense {int(dense_flops):,} flops ({first['flops'] / dense_flops:.1%}) "
                f"at share {first['share']:g}; below dense at {below} of {len(per_share)} shares with d ≥ 1",
                first["flops"] < dense_flops))
        for batch, grp in by_shape[by_shape["backend"] == "torch"].groupby("batch", sort=True):
            ratio = _ratios(grp)
            if ratio.empty:
                continue
            smallest = ratio.index.min()
            claims.append(_claim(f"SSS faster than dense at the smallest share with d ≥ 1 (PyTorch, {shape}, "
                                 f"batch {batch})",
                                 "SSS faster than dense at small shares (ESANN, C benchmark)",
                                 f"SSS/dense time {ratio.loc[smallest]:.2f} at share {smallest:g}",
                                 ratio.loc[smallest] < 1))
            rho = _spearman(ratio)
            claims.append(_claim(f"SSS/dense time ratio decreases as the share decreases (PyTorch, {shape}, "
                                 f"batch {batch})",
                                 "ratio decreases as the share decreases (spec §13)",
                                 f"Spearman ρ(share, ratio) = {rho:.2f} over {len(ratio)} shares", rho > 0))
    return claims


def approximation_claims(table: pd.DataFrame, dense_val: float) -> list[dict]:
    """table: rows (method, share, train_acc, val_acc, ...)."""
    claims = []
    sss = table[table["family"] == "SSS"]
    top = table["share"].max()
    best_sss = sss[sss["share"] == top]["val_acc"].max() if not sss.empty else np.nan
    claims.append(_claim(f"SSS keeps accuracy near dense at share {top:g}", "SSS keeps accuracy at small shares",
                         f"best SSS {best_sss:.3f} vs dense {dense_val:.3f}", best_sss >= dense_val - 0.02))
    wins, total = 0, 0
    for share, grp in table.groupby("share"):
        fam = grp.groupby("family")["val_acc"].max()
        if "SSS" in fam and "PSM" in fam:
            total += 1
            wins += fam["SSS"] >= fam["PSM"]
    claims.append(_claim("SSS at least as accurate as PSM without training", "ESANN: SSS better than PSM",
                         f"SSS ≥ PSM at {wins} of {total} shares", total > 0 and wins >= total / 2))
    low = table["share"].min()
    lr_low = table[(table["family"] == "LR") & (table["share"] == low)]["val_acc"].max()
    claims.append(_claim(f"accuracy falls at the smallest share {low:g}", "small shares lose accuracy before training",
                         f"LR {lr_low:.3f}, best SSS {sss[sss['share'] == low]['val_acc'].max():.3f}",
                         lr_low < dense_val))
    return claims


def finetune_summary(runs: pd.DataFrame) -> pd.DataFrame:
    return (runs.groupby("share")
            .agg(before_mean=("test_acc_before", "mean"), before_std=("test_acc_before", "std"),
                 after_mean=("test_acc_after", "mean"), after_std=("test_acc_after", "std"),
                 epochs_mean=("epochs", "mean"), state_dim=("state_dim", "first"), n_params=("n_params", "first"),
                 iterations=("test_acc_after", "size"))
            .reset_index().fillna({"before_std": 0.0, "after_std": 0.0}))


def finetune_claims(summary: pd.DataFrame, dense_test: float) -> list[dict]:
    gains = summary["after_mean"] - summary["before_mean"]
    # A share whose budget leaves no SSS parameter (d = 0: the zero matrix) has nothing to fine-tune.
    empty = summary["n_params"] == 0
    small = (summary["share"] <= 0.1) & ~empty
    skipped = (f"; share {', '.join(f'{s:g}' for s in summary[empty]['share'])} left out: its budget "
               "gives the zero matrix (no parameters)") if empty.any() else ""
    claims = [
        _claim("fine-tuning recovers accuracy lost by the SSS approximation", "ESANN: approximation then fine-tuning "
               "works well", f"mean gain {gains.mean():+.3f}; after ≥ before at {int((gains >= -1e-9).sum())} of "
               f"{len(gains)} shares", bool((gains >= -0.005).all())),
        _claim("fine-tuned SSS close to dense (within 0.03) at small shares (≤ 0.1)",
               "drastic parameter cut at little accuracy loss",
               (f"after {summary[small]['after_mean'].min():.3f} … {summary[small]['after_mean'].max():.3f} vs dense "
                f"{dense_test:.3f}" if small.any() else "no share ≤ 0.1 with parameters") + skipped,
               bool(small.any() and summary[small]["after_mean"].min() >= dense_test - 0.03)),
    ]
    return claims


def finetune_table_claims(table: pd.DataFrame, dense: dict) -> list[dict]:
    claims = []
    gains = table["test_acc_after"] - table["test_acc_before"]
    claims.append(_claim("fine-tuning does not lower test accuracy", "survey: fine-tuning improves every layer",
                         f"gain {gains.min():+.3f} … {gains.max():+.3f}", bool((gains >= -0.005).all())))
    for features, grp in table.groupby("features"):
        best = grp.loc[grp["test_acc_after"].idxmax()]
        claims.append(_claim(f"best structure after fine-tuning ({features})", "survey fine-tuning table (PDF)",
                             f"{best['method']} {best['test_acc_after']:.3f} (dense {dense[features]:.3f})",
                             best["test_acc_after"] >= dense[features] - 0.05))
    return claims


def render_table(df: pd.DataFrame, caption: str) -> tuple[str, str]:
    """(HTML, LaTeX) renderings of a table, floats with 4 significant digits."""
    fmt = {c: "{:.4g}".format for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    html = f"<p>{caption}</p>\n" + df.to_html(index=False, formatters=fmt, border=0)
    tex = df.to_latex(index=False, formatters=fmt, caption=caption.replace("_", r"\_"))
    return html, tex
