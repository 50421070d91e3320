"""What the teleportation figures conclude: the summaries' constants and the claims of
Figs 4, 5, 7 and 11 (teleport.md §11). No torch: the plot jobs import only this and
``convergence`` (Figs 6, 8, 9, 10), so they start fast.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from weightspace.pipeline.claims import claim

ANGLES = ("delta_grad", "delta_random", "grad_random", "random_random")


def random_spread(dimension: int) -> float:
    """Standard deviation (degrees) of the angle between independent random vectors in
    R^d: (180/pi)/sqrt(d)."""
    return math.degrees(1.0) / math.sqrt(dimension)


def micro_claims(summary) -> list[dict]:
    """``summary``: one row per setting with the mean and std of each angle and d."""
    ok_centre = (summary["delta_grad_mean"] - 90).abs() < 0.1 * summary["spread"]
    ok_narrow = summary["delta_grad_std"] < 0.1 * summary["random_random_std"]
    worst = (summary["delta_grad_std"] / summary["random_random_std"]).max()
    offset = (summary["delta_grad_mean"] - 90).abs().max()
    return [
        claim(
            "the gradient is orthogonal to micro-teleportation displacements",
            "angles (δ, g) concentrated at 90° for MLP/VGG, CIFAR-10 and random data, "
            "batch 8 and 64",
            f"{len(summary)} settings: |mean − 90°| ≤ {offset:.2g}°, std(δ, g) at most "
            f"{worst:.2g} × std(u, v)",
            bool(ok_centre.all() and ok_narrow.all()),
        )
    ]


def gradient_claims(summary) -> list[dict]:
    """``summary``: mean per (model, cob_range)."""
    parts, monotone = [], True
    for model, rows in summary.groupby("model", sort=False):
        rows = rows.sort_values("cob_range")
        rho = float(spearmanr(rows["cob_range"], rows["mean"]).statistic)
        drops = int((np.diff(rows["mean"].to_numpy()) < 0).sum())
        parts.append(f"{model}: Spearman {rho:.2f}, {drops} drop(s)")
        monotone &= rho >= 0.9
    return [
        claim(
            "the gradient change grows with the CoB range for every architecture",
            "monotone growth in Fig. 7 for MLP, VGG, ResNet, DenseNet",
            "; ".join(parts),
            monotone,
        )
    ]


def flatness_claims(table, endpoint_tolerance: float = 1e-3) -> list[dict]:
    """``table``: rows of alpha, split, loss, acc, pair ('before' or 'after')."""
    pivot = table.pivot_table(index=["split", "alpha"], columns="pair", values="loss")
    change = (pivot["after"] - pivot["before"]).abs()
    alphas = pivot.index.get_level_values("alpha")
    at_ends = np.isclose(alphas, 0.0) | np.isclose(alphas, 1.0)
    scale = pivot["before"].abs().clip(lower=1e-12)
    end_change = float((change[at_ends] / scale[at_ends]).max())
    between = change[~at_ends]
    return [
        claim(
            "teleportation keeps the endpoints' loss",
            "T(A), T(B) have the loss of A, B",
            f"largest relative change at α = 0, 1: {end_change:.2g}",
            end_change <= endpoint_tolerance,
        ),
        claim(
            "the 1-D loss profile changes after teleportation (flatness is not "
            "teleport-invariant)",
            "profiles before and after differ (Fig. 5, 'sharpens minima')",
            f"largest |Δ loss| off the endpoints {float(between.max()):.3g} (median "
            f"{float(between.median()):.3g}) against loss range "
            f"{float(pivot['before'].min()):.3g}–{float(pivot['before'].max()):.3g}",
            float(between.max()) > 0.1 * float(pivot["before"].abs().max()),
        ),
    ]


PANELS = ("init", "same_distr", "teleported")


def histogram_claims(stats) -> list[dict]:
    """``stats``: rows per panel with the statistics of ``weight_statistics``."""
    init, tele = stats.loc["init"], stats.loc["teleported"]
    holds = (
        tele["std"] > 1.5 * init["std"]
        and tele["kurtosis"] > 3 * 3
        and tele["outside_init_bound"] > 0.01
    )
    return [
        claim(
            "teleported weights are distributed much wider and heavier-tailed than at "
            "init",
            "teleported KDE much wider than the init histogram (Fig. 11)",
            f"std {init['std']:.3g} → {tele['std']:.3g}; kurtosis "
            f"{init['kurtosis']:.2f} → {tele['kurtosis']:.1f} (Gaussian 3); beyond "
            f"the init bound {init['outside_init_bound']:.1%} → "
            f"{tele['outside_init_bound']:.1%}",
            bool(holds),
        )
    ]
