"""structured_fig_approximation: top-1 accuracy against the share per approximator,
dense reference lines."""

from pathlib import Path

import numpy as np
import pandas as pd

from weightspace.pipeline.chunks import check_tables
from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.structured.features import FeatureSet
from weightspace.structured.summaries.fig_approximation import approximation_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    fs = FeatureSet.from_arrays(np.load(sm.input.features))
    parts = [pd.read_csv(p) for p in sm.input.csv]
    methods = [Path(p).stem for p in sm.input.csv]
    check_tables(parts, "method", methods, "structured_plot_approximation methods")
    table = pd.concat(parts, ignore_index=True)
    dense = {"train": fs.accuracy("train"), "val": fs.accuracy("test")}
    fig, axes = new_figure(ncols=2, width=8.6, height=3.8)
    for ax, part, title in (
        (axes[0], "train", "training features"),
        (axes[1], "val", "held-out features"),
    ):
        for i, (method, rows) in enumerate(table.groupby("method", sort=False)):
            rows = rows.sort_values("share")
            ax.plot(
                rows["share"],
                rows[f"{part}_acc"],
                marker="o",
                ms=3,
                color=f"C{i}",
                label=method,
            )
        ax.axhline(
            dense[part], color="k", ls="--", lw=1, label=f"dense {dense[part]:.3f}"
        )
        ax.set_xlabel("parameter share s")
        ax.set_ylabel("top-1 accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=9)
    axes[1].legend(fontsize=6.5, loc="lower right")
    save_figure(fig, sm.output.pdf, sm.output.png)
    out = pd.concat(
        [
            table,
            pd.DataFrame(
                [
                    {
                        "method": "dense",
                        "family": "dense",
                        "share": 1.0,
                        "train_acc": dense["train"],
                        "val_acc": dense["val"],
                        "rel_error": 0.0,
                        "n_params": fs.weight.size,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    with atomic_path(sm.output.csv) as tmp:
        out.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, approximation_claims(table, dense["val"]))
