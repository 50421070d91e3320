"""relu_fig_star: fractions of star nets with a kink crossing and with MSE below the per-ray
linear threshold against width, with Wilson intervals (earlier stage ends as thin lines)."""

import shutil

import numpy as np
import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.relu.star_summary import claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    table = pd.read_csv(sm.input.csv)
    last = table["epochs"].max()
    fig, ax = new_figure(width=5.0, height=3.6)
    series = (
        (
            "fraction_kink_crossed",
            "kink_low",
            "kink_high",
            "a kink crossed a data point",
            "C0",
            "o",
        ),
        (
            "fraction_mse_crossed",
            "mse_low",
            "mse_high",
            "MSE below per-ray linear threshold",
            "C3",
            "s",
        ),
    )
    for column, low, high, label, colour, marker in series:
        for epochs, rows in table.groupby("epochs"):
            rows = rows.sort_values("width")
            if epochs != last:
                ax.plot(
                    rows["width"],
                    rows[column],
                    color=colour,
                    lw=0.7,
                    alpha=0.35,
                    ls=":",
                )
                continue
            p = rows[column].to_numpy()
            err = np.vstack([p - rows[low], rows[high] - p])
            ax.errorbar(
                rows["width"],
                p,
                yerr=err,
                color=colour,
                marker=marker,
                capsize=3,
                ms=4,
                lw=1.4,
                label=f"{label} ({epochs:,} epochs)",
            )
    if table["epochs"].nunique() > 1:
        ax.plot([], [], color="0.5", lw=0.7, ls=":", label="same at earlier stage ends")
    nets = "/".join(
        str(n) for n in table[table["epochs"] == last].sort_values("width")["n_nets"]
    )
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("m (number of hidden neurons)")
    ax.set_ylabel("fraction of networks")
    step = (
        "2/λ_max (the original's double step)"
        if job.config["relu.star"]["star_double_step"]
        else "1/λ_max"
    )
    ax.set_title(f"2-D star, GD with step {step}, {nets} nets per width", fontsize=8)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=1)
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        shutil.copyfile(sm.input.csv, tmp)
    atomic_write_json(sm.output.claims, claims(table))
