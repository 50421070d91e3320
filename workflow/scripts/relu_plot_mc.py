"""relu_fig_mc: p_cross against width, log-log, with Wilson intervals and 2 m^-1/2."""

import shutil

import numpy as np
import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.relu.mc_summary import claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    summary = pd.read_csv(sm.input.csv)
    variants = list(dict.fromkeys(v["name"] for v in job.config["relu.mc.variants"]))
    fig, ax = new_figure(width=5.4, height=4.0)
    markers = "osd^v<>"
    styles = ["-", "--", ":", "-."]
    for i, variant in enumerate(variants):
        for j, (offset, rows) in enumerate(
            summary[summary["variant"] == variant].groupby("offset")
        ):
            rows = rows.sort_values("width")
            p = rows["p_cross"].to_numpy()
            err = np.vstack([p - rows["wilson_low"], rows["wilson_high"] - p])
            ax.errorbar(
                rows["width"],
                np.maximum(p, 1e-4),
                yerr=err,
                marker=markers[j % 7],
                ls=styles[i % 4],
                color=f"C{i}",
                capsize=2,
                ms=4,
                lw=1.2,
                label=f"{variant}, Δ={offset:g}",
            )
    m = np.array(sorted(summary["width"].unique()), dtype=float)
    ax.plot(m, 2 / np.sqrt(m), "k-", lw=1.0, alpha=0.6, label=r"$2 m^{-1/2}$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("m (number of hidden neurons)")
    ax.set_ylabel("estimated P(a kink crosses a data point)")
    ax.legend(fontsize=6.5, loc="lower left")
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        shutil.copyfile(sm.input.csv, tmp)
    atomic_write_json(sm.output.claims, claims(summary, variants[0]))
