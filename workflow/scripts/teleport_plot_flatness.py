"""teleport_fig5_flatness: loss and accuracy along (1 - α) A + α B (train solid, test
dashed), before and after teleporting both endpoints."""

import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.teleport.summaries import flatness_claims

TITLES = {"before": "A, B", "after": "T(A), T(B)"}
sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    table = pd.read_csv(sm.input.csv)
    fig, axes = new_figure(2, 2, width=3.6, height=2.6, squeeze=False)
    for col, pair in enumerate(("before", "after")):
        for row, metric in enumerate(("loss", "acc")):
            ax = axes[row, col]
            for split, style in (("train", "-"), ("test", "--")):
                part = table[(table["pair"] == pair) & (table["split"] == split)]
                ax.plot(
                    part["alpha"],
                    part[metric],
                    style,
                    color="C0" if row == 0 else "C1",
                    label=split,
                )
            ax.axvline(0, color="k", lw=0.5)
            ax.axvline(1, color="k", lw=0.5)
            ax.set_title(f"{TITLES[pair]}: {metric}", fontsize=8)
            ax.set_xlabel("α")
    top = table["loss"].max()
    for ax in axes[0]:
        ax.set_ylim(0, min(top * 1.05, 15))
    for ax in axes[1]:
        ax.set_ylim(0, 1.02)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")
    atomic_write_json(sm.output.claims, flatness_claims(table))
