"""sss_fig_speed: time per matrix-vector product against the share, dense vs SSS, per shape and batch."""

import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.structured.summaries import speed_claims, speed_summary

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    summary = speed_summary(pd.concat([pd.read_csv(p) for p in sm.input], ignore_index=True))
    shapes = list(dict.fromkeys(summary["shape"]))
    batches = sorted(summary["batch"].unique())
    fig, axes = new_figure(ncols=len(batches), width=4.2 * len(batches), height=3.6)
    axes = list(axes) if len(batches) > 1 else [axes]
    for ax, batch in zip(axes, batches):
        for i, shape in enumerate(shapes):
            for layer, style in (("dense", "--"), ("sss", "-")):
                rows = summary[(summary["shape"] == shape) & (summary["batch"] == batch)
                               & (summary["layer"] == layer)].sort_values("share")
                us = 1e6 * rows["seconds_per_matvec"]
                err = [us - 1e6 * rows["seconds_min"], 1e6 * rows["seconds_max"] - us]
                first = rows.iloc[0]
                ax.errorbar(rows["share"], us, yerr=err, ls=style, marker="o" if layer == "sss" else None,
                            color=f"C{i}", ms=3, capsize=2,
                            label=f"{layer} {int(first['rows'])}x{int(first['cols'])}"
                                  + (f" (K={int(first['n_stages'])})" if layer == "sss" else ""))
        ax.set_yscale("log")
        ax.set_xlabel("parameter share s")
        ax.set_ylabel("µs per matrix-vector product")
        ax.set_title(f"batch {batch}", fontsize=9)
        ax.legend(fontsize=6.5)
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, speed_claims(summary))
