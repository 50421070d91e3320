"""teleport_fig11_histograms: density of all weights at init, after the same-distribution
resampling and after one teleportation, with zoom insets at ±[0.12, 0.13]."""

import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.teleport.summaries import PANELS, histogram_claims

TITLES = {
    "init": "initialisation",
    "same_distr": "same distribution",
    "teleported": "teleported",
}
sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    density = pd.read_csv(sm.input.csv)
    stats = pd.read_csv(sm.input.stats).set_index("panel")
    fig, axes = new_figure(3, 1, width=3.0, height=2.7, squeeze=False)
    for ax, panel in zip(axes[0], PANELS):
        main = density[(density["panel"] == panel) & (density["region"] == "main")]
        ax.plot(main["x"], main["density"], color="C0")
        ax.set_xlim(-0.25, 0.25)
        ax.set_ylim(0, min(30, main["density"].max() * 1.1))
        ax.set_title(f"{TITLES[panel]} (std {stats.loc[panel, 'std']:.3g})", fontsize=8)
        ax.set_xlabel("weight")
        inset = ax.inset_axes([0.64, 0.5, 0.33, 0.36])
        zoom = density[(density["panel"] == panel) & (density["region"] == "zoom")]
        for side in (zoom[zoom["x"] < 0], zoom[zoom["x"] > 0]):
            inset.plot(side["x"].abs(), side["density"], lw=0.8)
        inset.set_title("|w| ∈ [0.12, 0.13]", fontsize=6)
        inset.tick_params(labelsize=5)
        inset.ticklabel_format(useOffset=False)
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        stats.reset_index().to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, histogram_claims(stats))
