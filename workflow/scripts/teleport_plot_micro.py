"""teleport_fig4_micro: per setting, histograms of the four angles in a window scaled
with the dimension (90° ± 4 (180/π)/√d), each normalised to a maximum of 1."""

import math

import numpy as np
import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.teleport.summaries import ANGLES, micro_claims, random_spread

LABELS = {
    "delta_grad": "(δ, ∇L)",
    "delta_random": "(δ, random)",
    "grad_random": "(∇L, random)",
    "random_random": "(random, random)",
}
sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    angles = pd.read_csv(sm.input.csv)
    keys = ["model", "dataset", "batch_size", "dimension"]
    summary = angles.groupby(keys, sort=False)[list(ANGLES)].agg(["mean", "std"])
    summary.columns = [f"{a}_{s}" for a, s in summary.columns]
    summary = summary.reset_index()
    summary["spread"] = summary["dimension"].map(random_spread)
    settings = list(angles.groupby(keys, sort=False))
    ncols = min(4, len(settings))
    nrows = math.ceil(len(settings) / ncols)
    fig, axes = new_figure(ncols, nrows, width=3.2, height=2.8, squeeze=False)
    for ax, ((model, dataset, batch, d), rows) in zip(axes.flat, settings):
        half = 4 * random_spread(d)
        bins = np.linspace(90 - half, 90 + half, 81)
        # the (delta, g) spike last and thick, so the wider control angles do not hide it
        for i, angle in reversed(list(enumerate(ANGLES))):
            counts, _ = np.histogram(rows[angle].clip(bins[0], bins[-1]), bins)
            ax.stairs(
                counts / max(counts.max(), 1),
                bins,
                color=f"C{i}",
                lw=2.0 if angle == "delta_grad" else 0.9,
                label=LABELS[angle],
            )
        ax.set_title(f"{model}, {dataset}, batch {batch}", fontsize=8)
        ax.set_xlabel("angle (degrees)")
    for ax in list(axes.flat)[len(settings) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, micro_claims(summary))
