"""teleport_fig7_gradients: mean ± std of |‖∇L(W)‖/‖W‖ − ‖∇L(TW)‖/‖TW‖| against the CoB
range, one panel per architecture."""

import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.teleport.summaries import gradient_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    rows = pd.concat([pd.read_csv(p) for p in sm.input], ignore_index=True)
    summary = (
        rows.groupby(["model", "cob_range"], sort=False)
        .agg(
            mean=("value", "mean"),
            std=("value", "std"),
            weight_norm_ratio=("weight_norm_ratio", "mean"),
            grad_norm_ratio=("grad_norm_ratio", "mean"),
            samples=("value", "size"),
        )
        .reset_index()
    )
    models = list(summary["model"].unique())
    fig, axes = new_figure(len(models), 1, width=2.8, height=2.6, squeeze=False)
    for ax, model in zip(axes[0], models):
        part = summary[summary["model"] == model]
        ax.errorbar(
            part["cob_range"],
            part["mean"],
            yerr=part["std"],
            marker="o",
            ms=3,
            capsize=2,
        )
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("CoB range σ")
    axes[0, 0].set_ylabel("|‖∇L(W)‖/‖W‖ − ‖∇L(TW)‖/‖TW‖|")
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, gradient_claims(summary))
