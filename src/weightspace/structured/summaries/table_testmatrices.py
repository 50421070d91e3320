"""structured_table_testmatrices: relative Frobenius error and parameter counts per
family, share and approximator, and its claims (spec §13)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightspace.structured.summaries.common import claim

# which approximator is expected to recover which test-matrix family exactly (spec §13)
MATCHING = {
    "low_rank": "LR",
    "sss": "SSS",
    "ldr_toeplitz": "TL",
    "hierarchical": "HMat",
}


def matrix_benchmark_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean relative error and parameter count per (family, share, approximator),
    matrices averaged."""
    return (
        rows.groupby(["family", "share", "approximator"], sort=False)
        .agg(
            rel_error=("rel_error", "mean"),
            n_params=("n_params", "mean"),
            budget=("budget", "first"),
            matrices=("rel_error", "size"),
        )
        .reset_index()
    )


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
        claims.append(
            claim(
                f"{method} is the best approximator of the {family} family "
                f"(share {top:g})",
                "each structure wins on its own family",
                f"{method} rel. error {err:.2e}{' (exact)' if err < tol else ''}; best "
                f"{best['approximator']} {float(best['rel_error']):.2e}",
                wins,
            )
        )
    rnd = table[table["family"] == "random"]
    if not rnd.empty:
        wins, total = 0, 0
        for _share, grp in rnd.groupby("share"):
            best = grp.loc[grp["rel_error"].idxmin(), "approximator"]
            wins += best == "LR"
            total += 1
        winners = ", ".join(
            sorted(
                set(rnd.loc[rnd.groupby("share")["rel_error"].idxmin(), "approximator"])
            )
        )
        claims.append(
            claim(
                "LR gives the lowest error on i.i.d. random matrices "
                "(spec §13 expectation)",
                "Eckart–Young: LR optimal among matrices of its rank (spec §13)",
                f"LR best at {wins} of {total} shares (best: {winners})",
                wins == total,
            )
        )
    over = table[table["n_params"] > table["budget"]]
    claims.append(
        claim(
            "every approximation fits its parameter budget",
            "count ≤ ⌊s·n²⌋",
            f"{len(over)} of {len(table)} cells over budget",
            over.empty,
        )
    )
    mono, bad = [], []
    for (family, method), grp in table[
        table["approximator"].isin(["LR", "TL", "HMat"])
    ].groupby(["family", "approximator"]):
        errs = grp.sort_values("share")["rel_error"].to_numpy()
        mono.append(bool(np.all(np.diff(errs) <= 1e-9)))
        if not mono[-1]:
            bad.append(f"{method} on {family}")
    claims.append(
        claim(
            "errors do not increase with the share (LR, TL, HMat)",
            "spec §13",
            f"{sum(mono)} of {len(mono)} (family, method) curves non-increasing"
            + (f"; not: {', '.join(bad)}" if bad else ""),
            all(mono),
        )
    )
    return claims


def testmatrices_caption(scale: str, testmatrices: dict) -> str:
    """The table's caption; testmatrices: the config's structured.testmatrices."""
    size = testmatrices["size"]
    return (
        f"structured_table_testmatrices ({scale}): relative Frobenius error of each "
        f"approximator on {size}x{size} test matrices (mean over matrices), per share; "
        "parameter counts in the CSV."
    )
