"""The random-bases figures and the distributed table from run results, and their
claims (random_bases.md "Targets", §9, §10, §13). Pure pandas, no torch.

A run result (workflow/scripts/rbd_train.py) holds its spec (data set, network,
method, d, compartments, workers, seed), its per-epoch history (validation accuracy;
RBD/FPD: cosine of the step with the mini-batch gradient, mean/min/max over the
epoch's steps and the per-variable means), D, its compartments and the scalars a step
communicates.
"""

from __future__ import annotations

import math

import pandas as pd

from weightspace.pipeline.claims import claim


def reference_cosine(d: int, size: int) -> float:
    """E[cos(Phi Phi^T g, g)] for Gaussian Phi (D x d): sqrt(d / (D + d)) to leading
    order, which is sqrt(d / D) for d << D. It does not depend on g (rotation
    invariance), so it holds for real gradients too."""
    return math.sqrt(d / (size + d))


def final_rows(runs: list[dict]) -> pd.DataFrame:
    """One row per run: its spec, final validation accuracy (%) and mean cosine."""
    rows = []
    for run in runs:
        last = run["history"][-1]
        cosines = [h["cosine_mean"] for h in run["history"] if "cosine_mean" in h]
        rows.append(
            {
                "dataset": run["dataset"],
                "network": run["network"],
                "method": run["method"],
                "d": run["d"],
                "compartments": run["compartments"],
                "workers": run["workers"],
                "seed": run["seed_index"],
                "D": run["parameters"],
                "n_compartments": len(run["compartment_parts"]),
                "scalars_per_step": run["scalars_per_step"],
                "updates": run["updates"],
                "images": run["images"],
                "val_acc": 100 * last["val_acc"]
                if run["status"] == "completed"
                else None,
                "cosine_mean": sum(cosines) / len(cosines) if cosines else None,
            }
        )
    return pd.DataFrame(rows)


def _mean_over_seeds(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return (
        frame.groupby(keys, sort=False)
        .agg(
            val_acc_mean=("val_acc", "mean"),
            val_acc_std=("val_acc", "std"),
            runs=("seed", "count"),
            diverged=("val_acc", lambda v: int(v.isna().sum())),
            cosine_mean=("cosine_mean", "mean"),
            D=("D", "first"),
            scalars_per_step=("scalars_per_step", "first"),
            updates=("updates", "first"),
            images=("images", "first"),
        )
        .reset_index()
        .fillna({"val_acc_std": 0.0})
    )


# --- rbd_fig_dimensions -----------------------------------------------------------------
def dimensions(runs: list[dict]) -> pd.DataFrame:
    out = _mean_over_seeds(final_rows(runs), ["method", "d"])
    out["reference_cosine"] = [
        reference_cosine(int(r.d), int(r.D)) for r in out.itertuples()
    ]
    return out.sort_values(["method", "d"]).reset_index(drop=True)


def dimensions_claims(summary: pd.DataFrame) -> list[dict]:
    result = []
    rbd = summary[summary["method"] == "rbd"].set_index("d")
    fpd = summary[summary["method"] == "fpd"].set_index("d")
    if len(rbd) >= 2:
        small, large = rbd.index.min(), rbd.index.max()
        result.append(
            claim(
                "RBD accuracy grows with the number of directions d",
                "accuracy rises with d in the dimension sweep",
                f"RBD d={small}: {rbd.loc[small, 'val_acc_mean']:.1f} %, "
                f"d={large}: {rbd.loc[large, 'val_acc_mean']:.1f} %",
                bool(rbd.loc[large, "val_acc_mean"] > rbd.loc[small, "val_acc_mean"]),
            )
        )
    both = sorted(set(rbd.index) & set(fpd.index))
    if both:
        above = [
            d for d in both if rbd.loc[d, "val_acc_mean"] > fpd.loc[d, "val_acc_mean"]
        ]
        result.append(
            claim(
                "RBD above FPD at equal d",
                "re-drawing the subspace every step beats a fixed one",
                f"RBD above FPD at {len(above)} of {len(both)} values of d",
                len(above) == len(both),
            )
        )
    if len(rbd):
        error = max(
            abs(r.cosine_mean / r.reference_cosine - 1) for r in rbd.itertuples()
        )
        result.append(
            claim(
                "RBD's mean cosine with the gradient is sqrt(d/D)",
                "cos(step, g) ~ sqrt(d/D) (analytic)",
                f"largest relative deviation over d: {error:.1%}",
                error < 0.05,
            )
        )
    return result


# --- rbd_fig_compartments ---------------------------------------------------------------
def compartments(runs: list[dict]) -> pd.DataFrame:
    frame = final_rows(runs)
    out = _mean_over_seeds(frame, ["network", "compartments"])
    counts = frame.groupby(["network", "compartments"], sort=False)["n_compartments"]
    out["n_compartments"] = counts.first().to_numpy()
    return out


def compartments_claims(summary: pd.DataFrame) -> list[dict]:
    result = []
    for network, rows in summary.groupby("network", sort=False):
        acc = rows.set_index("compartments")["val_acc_mean"]
        scalars = rows.set_index("compartments")["scalars_per_step"]
        if "single" in acc and "per_layer" in acc:
            result.append(
                claim(
                    f"{network.upper()}: per-layer compartments above one compartment",
                    "independent directions per network part improve accuracy",
                    f"per-layer {acc['per_layer']:.1f} % ({scalars['per_layer']} "
                    f"scalars/step) vs single {acc['single']:.1f} % "
                    f"({scalars['single']} scalars/step)",
                    bool(acc["per_layer"] > acc["single"]),
                )
            )
    return result


# --- rbd_fig_correlation ----------------------------------------------------------------
def correlation(runs: list[dict]) -> pd.DataFrame:
    """Per (network, method, epoch): the cosine statistics, averaged over seeds, with
    the per-variable means and the reference sqrt(d/(D+d))."""
    rows = []
    for run in runs:
        if run["method"] not in ("rbd", "fpd"):
            continue
        for h in run["history"]:
            if "cosine_mean" not in h:
                continue
            row = {
                "dataset": run["dataset"],
                "network": run["network"],
                "method": run["method"],
                "seed": run["seed_index"],
                "epoch": h["epoch"],
                "cosine_mean": h["cosine_mean"],
                "cosine_min": h["cosine_min"],
                "cosine_max": h["cosine_max"],
                "reference": reference_cosine(run["d"], run["parameters"]),
            }
            for i, value in enumerate(h["variable_cosine_mean"]):
                row[f"variable{i}"] = value
            rows.append(row)
    frame = pd.DataFrame(rows)
    keys = ["dataset", "network", "method", "epoch"]
    values = [c for c in frame.columns if c not in keys + ["seed"]]
    agg = {c: (c, "mean") for c in values}
    agg["cosine_min"] = ("cosine_min", "min")
    agg["cosine_max"] = ("cosine_max", "max")
    return frame.groupby(keys, sort=False).agg(**agg).reset_index()


def correlation_claims(summary: pd.DataFrame) -> list[dict]:
    result = []
    for (dataset, network), rows in summary.groupby(["dataset", "network"], sort=False):
        rbd = rows[rows["method"] == "rbd"]
        if len(rbd):
            error = float((rbd["cosine_mean"] / rbd["reference"] - 1).abs().max())
            result.append(
                claim(
                    f"{network.upper()}-{dataset}: RBD's cosine with the gradient "
                    "stays at sqrt(d/D) over training",
                    "cos(step, g) near the analytic sqrt(d/D)",
                    f"mean cosine {rbd['cosine_mean'].mean():.4f} against "
                    f"{rbd['reference'].iloc[0]:.4f}; largest per-epoch deviation "
                    f"{error:.1%}",
                    error < 0.05,
                )
            )
    return result


# --- rbd_table_distributed --------------------------------------------------------------
def distributed(runs: list[dict]) -> pd.DataFrame:
    frame = final_rows(runs)
    frame["copies_identical"] = [
        all(h.get("copies_identical", True) for h in r["history"]) for r in runs
    ]
    out = _mean_over_seeds(frame, ["dataset", "network", "workers"])
    out["copies_identical"] = (
        frame.groupby(["dataset", "network", "workers"], sort=False)["copies_identical"]
        .all()
        .to_numpy()
    )
    out["allreduce_scalars"] = out["D"]
    out["scalars_vs_allreduce"] = out["scalars_per_step"] / out["D"]
    return out.sort_values("workers").reset_index(drop=True)


def distributed_claims(summary: pd.DataFrame, d: int) -> list[dict]:
    exact = all(
        int(r.scalars_per_step) == int(r.workers) * d for r in summary.itertuples()
    )
    return [
        claim(
            "all worker copies hold identical parameters",
            "workers that share seeds stay identical while exchanging only coordinates",
            "the summed step rebuilt from the exchanged coordinates equals the "
            "applied one bit for bit in every checked epoch"
            if bool(summary["copies_identical"].all())
            else "a rebuilt step differed from the applied one",
            bool(summary["copies_identical"].all()),
        ),
        claim(
            "a step communicates W x d scalars, far below D",
            "only d scalars per worker cross the network (against D for a "
            "gradient all-reduce)",
            ", ".join(
                f"W={int(r.workers)}: {int(r.scalars_per_step)} "
                f"({r.scalars_vs_allreduce:.2%} of D)"
                for r in summary.itertuples()
            ),
            exact and bool((summary["scalars_vs_allreduce"] < 0.05).all()),
        ),
    ]
