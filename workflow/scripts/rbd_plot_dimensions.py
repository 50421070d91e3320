"""rbd_fig_dimensions: validation accuracy against the number of directions d (RBD and
FPD), with the analytic cosine sqrt(d/D) on a second axis."""

import json

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.rbd.summaries import dimensions, dimensions_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    runs = [run for path in sm.input for run in json.load(open(path))["runs"]]
    summary = dimensions(runs)
    cfg = job.config["rbd.fig_dimensions"]
    fig, ax = new_figure(1, 1, width=4.2, height=3.0)
    for method, rows in summary.groupby("method", sort=False):
        ax.errorbar(
            rows["d"],
            rows["val_acc_mean"],
            yerr=rows["val_acc_std"],
            marker="o",
            ms=3,
            capsize=2,
            label=method.upper(),
        )
    ax.set_xlabel("directions d")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_xscale("log")
    ax.set_title(
        f"{cfg['network'].upper()} on {cfg['dataset']}, {cfg['epochs']} epochs",
        fontsize=8,
    )
    cos = ax.twinx()
    ref = summary.drop_duplicates("d").sort_values("d")
    cos.plot(ref["d"], ref["reference_cosine"], "k--", lw=0.8, label="√(d/D)")
    rbd = summary[summary["method"] == "rbd"]
    cos.plot(rbd["d"], rbd["cosine_mean"], "kx", ms=4, label="RBD mean cosine")
    cos.set_ylabel("cosine(step, gradient)")
    lines = ax.get_legend_handles_labels()
    more = cos.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, dimensions_claims(summary))
