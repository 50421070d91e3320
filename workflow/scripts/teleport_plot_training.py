"""teleport_fig6_convergence, _fig8_activations, _fig9_initializers, _fig10_pseudo: per
(data set, model, initialiser) the mean ± std accuracy curves of each group (optimiser
kind x arm, learning rates pooled) and box plots at the box epochs; the CSV holds every
run's every epoch, the claims compare the arms."""

import numpy as np
import pandas as pd

from weightspace.pipeline.chunks import check_chunks, read_runs
from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.teleport.convergence import (
    ARM_LABELS,
    PANEL,
    boost_claims,
    curves,
    per_lr,
    pseudo_claims,
    runs_table,
    zero_filled,
)
from weightspace.teleport.jobs import model_id

PUBLISHED = {
    "fig6_convergence": "teleporting once at init accelerates convergence (Fig. 6)",
    "fig8_activations": "the same boost for ELU, LeakyReLU and Tanh MLPs (Fig. 8)",
    "fig9_initializers": "the same boost with normal(0.02) and Xavier init (Fig. 9)",
}
sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    block = cfg["block"]
    runs = read_runs(sm.input)
    wanted = [
        (d, model_id(s), i, a, o["name"], k)
        for d in cfg["datasets"]
        for s in block["models"]
        for i in block["initializers"]
        for a in block["arms"]
        for o in cfg["optimizers"]
        for k in range(cfg["runs"])
    ]
    # a job of another figure may hold arms this one does not plot
    cells = {w[:4] for w in wanted}
    runs = [
        r
        for r in runs
        if (r["dataset"], r["model"], r["initializer"], r["arm"]) in cells
    ]
    check_chunks(
        [
            (
                r["dataset"],
                r["model"],
                r["initializer"],
                r["arm"],
                r["optimizer"],
                r["seed_index"],
            )
            for r in runs
        ],
        wanted,
        f"teleport_plot_training {sm.wildcards.figure} runs",
    )
    table = runs_table(runs)
    plotted = zero_filled(table, cfg["epochs"]) if cfg["zero_fill_diverged"] else table
    curve = curves(plotted)
    box_epochs = cfg["box_epochs"]
    panels = list(table.groupby(PANEL, sort=False).groups)
    arms = list(block["arms"])
    lr_table = per_lr(table)
    fig, axes = new_figure(3, len(panels), width=3.6, height=2.9, squeeze=False)
    for row, panel in enumerate(panels):
        ax_curve, ax_box, ax_lr = axes[row]
        sel = (curve[PANEL] == pd.Series(panel, index=PANEL)).all(axis=1)
        for (kind_, arm), part in curve[sel].groupby(["kind", "arm"], sort=False):
            color = f"C{arms.index(arm)}"
            style = "-" if kind_ == "SGD" else "--"
            label = f"{ARM_LABELS[arm]} {kind_}"
            ax_curve.plot(part["epoch"], part["mean"], style, color=color, label=label)
            ax_curve.fill_between(
                part["epoch"],
                part["mean"] - part["std"],
                part["mean"] + part["std"],
                color=color,
                alpha=0.12,
            )
        ax_curve.set_title(" / ".join(map(str, panel)), fontsize=8)
        ax_curve.set_xlabel("epoch")
        ax_curve.set_ylabel(f"{table['evaluated_on'].iloc[0]} accuracy")
        tsel = (plotted[PANEL] == pd.Series(panel, index=PANEL)).all(axis=1)
        groups = list(plotted[tsel].groupby(["kind", "arm"], sort=False).groups)
        width = 0.8 / len(groups)
        for g, (kind_, arm) in enumerate(groups):
            data = [
                plotted[
                    tsel
                    & (plotted["kind"] == kind_)
                    & (plotted["arm"] == arm)
                    & (plotted["epoch"] == e)
                ]["acc"].dropna()
                for e in box_epochs
            ]
            positions = np.arange(len(box_epochs)) + (g - (len(groups) - 1) / 2) * width
            parts = ax_box.boxplot(
                data,
                positions=positions,
                widths=width * 0.9,
                patch_artist=True,
                manage_ticks=False,
            )
            for patch in parts["boxes"]:
                patch.set_facecolor(f"C{arms.index(arm)}")
                patch.set_alpha(0.4 if kind_ == "SGD" else 0.8)
        ax_box.set_xticks(range(len(box_epochs)), [f"epoch {e}" for e in box_epochs])
        ax_box.set_title("boxes: light SGD, dark SGD + momentum", fontsize=7)
        lsel = (lr_table[PANEL] == pd.Series(panel, index=PANEL)).all(axis=1)
        for (arm, momentum), part in lr_table[lsel].groupby(
            ["arm", "momentum"], sort=False
        ):
            ax_lr.errorbar(
                part["lr"],
                part["final_acc_mean"],
                yerr=part["final_acc_std"],
                fmt="o-" if momentum == 0 else "s--",
                color=f"C{arms.index(arm)}",
                ms=3,
                capsize=2,
            )
            for x, y, n in zip(part["lr"], part["final_acc_mean"], part["diverged"]):
                if n:
                    ax_lr.annotate(f"{n} diverged", (x, y), fontsize=5)
        ax_lr.set_xscale("log")
        ax_lr.set_xlabel("learning rate")
        ax_lr.set_title("last epoch, per learning rate", fontsize=7)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    if sm.wildcards.figure == "fig10_pseudo":
        claims = pseudo_claims(table, box_epochs)
    else:
        claims = boost_claims(table, box_epochs, PUBLISHED[sm.wildcards.figure])
    atomic_write_json(sm.output.claims, claims)
    job.log.info("per learning rate:\n%s", lr_table.to_string(index=False))
    job.record.metrics["runs"] = len(runs)
