"""structured_fig_finetune: accuracy of the SSS layer before and after fine-tuning per
share (mean and std over iterations), and the claims."""

from __future__ import annotations

import pandas as pd

from weightspace.structured.summaries.common import claim


def finetune_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per share: mean and std over iterations of the test accuracy before and after
    fine-tuning, mean epochs, the SSS state dimension and parameters, iterations."""
    accuracy = {
        f"{when}_{stat}": (f"test_acc_{when}", stat)
        for when in ("before", "after")
        for stat in ("mean", "std")
    }
    first = {k: (k, "first") for k in ("state_dim", "n_params")}
    summary = runs.groupby("share").agg(
        **accuracy,
        epochs_mean=("epochs", "mean"),
        **first,
        iterations=("test_acc_after", "size"),
    )
    return summary.reset_index().fillna({"before_std": 0.0, "after_std": 0.0})


def finetune_claims(summary: pd.DataFrame, dense_test: float) -> list[dict]:
    gains = summary["after_mean"] - summary["before_mean"]
    # A share whose budget leaves no SSS parameter (d = 0: the zero matrix) has nothing
    # to fine-tune.
    empty = summary["n_params"] == 0
    small = (summary["share"] <= 0.1) & ~empty
    left_out = ", ".join(f"{s:g}" for s in summary[empty]["share"])
    skipped = (
        f"; share {left_out} left out: its budget gives the zero matrix (no parameters)"
        if empty.any()
        else ""
    )
    claims = [
        claim(
            "fine-tuning recovers accuracy lost by the SSS approximation",
            "ESANN: approximation then fine-tuning works well",
            f"mean gain {gains.mean():+.3f}; after ≥ before at "
            f"{int((gains >= -1e-9).sum())} of {len(gains)} shares",
            bool((gains >= -0.005).all()),
        ),
        claim(
            "fine-tuned SSS close to dense (within 0.03) at small shares (≤ 0.1)",
            "drastic parameter cut at little accuracy loss",
            (
                f"after {summary[small]['after_mean'].min():.3f} … "
                f"{summary[small]['after_mean'].max():.3f} vs dense {dense_test:.3f}"
                if small.any()
                else "no share ≤ 0.1 with parameters"
            )
            + skipped,
            bool(
                small.any() and summary[small]["after_mean"].min() >= dense_test - 0.03
            ),
        ),
    ]
    return claims
