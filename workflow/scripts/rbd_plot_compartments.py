"""rbd_fig_compartments: validation accuracy of each compartment setting against the
scalars a step communicates, one panel per network."""

import json

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.rbd.summaries import compartments, compartments_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    runs = [run for path in sm.input for run in json.load(open(path))["runs"]]
    summary = compartments(runs)
    cfg = job.config["rbd.fig_compartments"]
    networks = list(summary["network"].unique())
    fig, axes = new_figure(len(networks), 1, width=4.0, height=3.0, squeeze=False)
    for ax, network in zip(axes[0], networks):
        rows = summary[summary["network"] == network]
        for row in rows.itertuples():
            ax.errorbar(
                row.scalars_per_step,
                row.val_acc_mean,
                yerr=row.val_acc_std,
                marker="o",
                ms=4,
                capsize=2,
                label=f"{row.compartments} ({row.n_compartments} compartments)",
            )
        ax.set_xscale("log")
        ticks = []
        for value in sorted(rows["scalars_per_step"].unique()):
            if not ticks or value > 1.2 * ticks[-1]:  # labels that do not overlap
                ticks.append(int(value))
        ax.set_xticks(ticks, [str(t) for t in ticks], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("scalars communicated per step")
        ax.set_title(f"{network.upper()}, d = {cfg['d']}", fontsize=8)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("validation accuracy (%)")
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, compartments_claims(summary))
