"""rbd_table1: validation accuracy per (data set, network, method), mean ± std over
seeds and the ratio to SGD, beside the published Table 1 (random_bases.md §10), and its
claims. No torch."""

from __future__ import annotations

import pandas as pd

from weightspace.pipeline.claims import claim
from weightspace.rbd.presets import PRESET_DATASET, PUBLISHED_TABLE1

ORDER = ("nes", "fpd", "rbd", "sgd")


def table(runs: list[dict]) -> pd.DataFrame:
    """One row per (data set, network, method); accuracies in %."""
    rows = []
    for run in runs:
        final = run["history"][-1]
        rows.append(
            {
                "dataset": run["dataset"],
                "network": run["network"],
                "method": run["method"],
                "seed": run["seed_index"],
                "val_acc": 100 * final["val_acc"]
                if run["status"] == "completed"
                else None,
                "updates": run["updates"],
                "images": run["images"],
                "parameters": run["parameters"],
            }
        )
    frame = pd.DataFrame(rows)
    out = (
        frame.groupby(["dataset", "network", "method"], sort=False)
        .agg(
            val_acc_mean=("val_acc", "mean"),
            val_acc_std=("val_acc", "std"),
            runs=("seed", "count"),
            diverged=("val_acc", lambda v: int(v.isna().sum())),
            updates=("updates", "first"),
            images=("images", "first"),
            D=("parameters", "first"),
        )
        .reset_index()
        .fillna({"val_acc_std": 0.0})
    )
    sgd = out[out["method"] == "sgd"].set_index(["dataset", "network"])["val_acc_mean"]
    out["ratio_to_sgd"] = [
        row.val_acc_mean / sgd.get((row.dataset, row.network), float("nan"))
        for row in out.itertuples()
    ]
    published = [
        PUBLISHED_TABLE1.get(
            (row.network, PRESET_DATASET.get(row.dataset, row.dataset)), {}
        ).get(row.method, (None, None))
        for row in out.itertuples()
    ]
    out["published_mean"] = [p[0] for p in published]
    out["published_std"] = [p[1] for p in published]
    out["order"] = out["method"].map(ORDER.index)
    return out.sort_values(["dataset", "network", "order"]).drop(columns="order")


def claims(summary: pd.DataFrame) -> list[dict]:
    """The published ordering SGD > RBD > FPD > NES, cell by cell."""
    result = []
    for (dataset, network), rows in summary.groupby(["dataset", "network"], sort=False):
        acc = rows.set_index("method")["val_acc_mean"]
        pairs = [
            (a, b)
            for a, b in (("sgd", "rbd"), ("rbd", "fpd"), ("fpd", "nes"))
            if a in acc and b in acc
        ]
        holds = all(acc[a] > acc[b] for a, b in pairs)
        text = ", ".join(f"{m.upper()} {acc[m]:.1f}" for m in ORDER if m in acc)
        result.append(
            claim(
                f"{network.upper()}-{dataset}: SGD > RBD > FPD > NES",
                "every row of Table 1 (e.g. FC-MNIST NES 22.5, FPD 80.0, RBD 93.9, SGD 98.3 %)",
                text + " %",
                holds,
            )
        )
    return result
