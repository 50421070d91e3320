"""relu_fig_kink_distributions: CDFs of the kink distance for each d against U(0, √3)."""

import shutil

import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json, read_json
from weightspace.relu.kinks import claims

with script_job(snakemake) as job:  # noqa: F821 (injected by Snakemake)
    frame = pd.read_csv(snakemake.input.csv)  # noqa: F821
    summary = read_json(snakemake.input.summary)  # noqa: F821
    dims = summary["dims"]

    fig, ax = new_figure(width=5.0, height=3.6)
    import matplotlib

    colours = matplotlib.colormaps["viridis"].resampled(len(dims))
    for i, d in enumerate(dims):
        ks = summary["ks_to_uniform"][str(d)]
        ax.plot(
            frame["distance"],
            frame[f"d={d}"],
            color=colours(i),
            lw=1.4,
            label=f"d = {d} (KS {ks:.3f})",
        )
    ax.plot(
        frame["distance"],
        frame["uniform_0_sqrt3"],
        "k--",
        lw=1.2,
        label=r"U(0, $\sqrt{3}$)",
    )
    ax.set_xlabel(r"kink distance $|b| / \|w\|$")
    ax.set_ylabel("CDF")
    ax.set_xlim(0, frame["distance"].max())
    ax.set_ylim(0, 1.01)
    ax.set_title(
        rf"$b \sim U(0, \sqrt{{6}})$, $w \sim N(0, 2/d\, I)$, {summary['samples']:,} neurons per d",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, snakemake.output.pdf, snakemake.output.png)  # noqa: F821
    with atomic_path(snakemake.output.csv) as tmp:  # noqa: F821
        shutil.copyfile(snakemake.input.csv, tmp)  # noqa: F821
    job.record.metrics["ks_to_uniform"] = summary["ks_to_uniform"]
    atomic_write_json(snakemake.output.claims, claims(summary))  # noqa: F821
