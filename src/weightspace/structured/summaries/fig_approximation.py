"""structured_fig_approximation: claims on the accuracy of approximated last layers
without training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightspace.structured.summaries.common import claim


def approximation_claims(table: pd.DataFrame, dense_val: float) -> list[dict]:
    """table: rows (method, share, train_acc, val_acc, ...)."""
    claims = []
    sss = table[table["family"] == "SSS"]
    top = table["share"].max()
    best_sss = sss[sss["share"] == top]["val_acc"].max() if not sss.empty else np.nan
    claims.append(
        claim(
            f"SSS keeps accuracy near dense at share {top:g}",
            "SSS keeps accuracy at small shares",
            f"best SSS {best_sss:.3f} vs dense {dense_val:.3f}",
            best_sss >= dense_val - 0.02,
        )
    )
    wins, total = 0, 0
    for _share, grp in table.groupby("share"):
        fam = grp.groupby("family")["val_acc"].max()
        if "SSS" in fam and "PSM" in fam:
            total += 1
            wins += fam["SSS"] >= fam["PSM"]
    claims.append(
        claim(
            "SSS at least as accurate as PSM without training",
            "ESANN: SSS better than PSM",
            f"SSS ≥ PSM at {wins} of {total} shares",
            total > 0 and wins >= total / 2,
        )
    )
    low = table["share"].min()
    lr_low = table[(table["family"] == "LR") & (table["share"] == low)]["val_acc"].max()
    claims.append(
        claim(
            f"accuracy falls at the smallest share {low:g}",
            "small shares lose accuracy before training",
            f"LR {lr_low:.3f}, "
            f"best SSS {sss[sss['share'] == low]['val_acc'].max():.3f}",
            lr_low < dense_val,
        )
    )
    return claims
