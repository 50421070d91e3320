"""structured_table_finetune: test accuracy and loss before and after fine-tuning per
feature set and method, and the claims."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from weightspace.structured.summaries.common import claim

COLUMNS = [
    "features",
    "method",
    "share",
    "n_params",
    "budget",
    "rel_error",
    "test_acc_before",
    "test_loss_before",
    "test_acc_after",
    "test_loss_after",
    "epochs",
    "dense_test_acc",
]


def finetune_table(results: Iterable[Mapping]) -> pd.DataFrame:
    """One row per fine-tuning result (feature set, method), the columns COLUMNS."""
    return pd.DataFrame([{k: result[k] for k in COLUMNS} for result in results])


def finetune_table_claims(table: pd.DataFrame, dense: dict) -> list[dict]:
    claims = []
    gains = table["test_acc_after"] - table["test_acc_before"]
    claims.append(
        claim(
            "fine-tuning does not lower test accuracy",
            "survey: fine-tuning improves every layer",
            f"gain {gains.min():+.3f} … {gains.max():+.3f}",
            bool((gains >= -0.005).all()),
        )
    )
    for features, grp in table.groupby("features"):
        best = grp.loc[grp["test_acc_after"].idxmax()]
        claims.append(
            claim(
                f"best structure after fine-tuning ({features})",
                "survey fine-tuning table (PDF)",
                f"{best['method']} {best['test_acc_after']:.3f} "
                f"(dense {dense[features]:.3f})",
                best["test_acc_after"] >= dense[features] - 0.05,
            )
        )
    return claims


def finetune_table_caption(scale: str, finetune_table: dict) -> str:
    """The table's caption; finetune_table: the config's structured.finetune_table."""
    return (
        f"structured_table_finetune ({scale}): structured last layers at share "
        f"{finetune_table['share']:g}, test top-1 and loss before and after halving-lr "
        "SGD fine-tuning."
    )
