"""structured_fig_speed: time per matrix-vector product against the share, dense vs SSS,
per shape: one panel per C build (one vector, the paper's figure) and one per PyTorch
batch size."""

import math
from pathlib import Path

import pandas as pd

from weightspace.pipeline.chunks import check_tables
from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.structured.summaries.fig_speed import (
    BACKEND_NAMES,
    speed_claims,
    speed_summary,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    parts = [pd.read_csv(p) for p in sm.input]
    shapes = [Path(p).stem for p in sm.input]
    check_tables(parts, "shape", shapes, "structured_plot_speed shapes")
    summary = speed_summary(pd.concat(parts, ignore_index=True))
    shapes = list(dict.fromkeys(summary["shape"]))
    backends = list(dict.fromkeys(summary["backend"]))
    panels = [(b, 1) for b in backends if b.startswith("c_")]
    panels += [
        ("torch", int(batch))
        for batch in sorted(
            summary.loc[summary["backend"] == "torch", "batch"].unique()
        )
    ]
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(
        ncols=ncols,
        nrows=nrows,
        width=4.4,
        height=3.4,
        squeeze=False,
        layout="constrained",
    )
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (backend, batch) in zip(flat, panels):
        for i, shape in enumerate(shapes):
            for layer, style in (("dense", "--"), ("sss", "-")):
                rows = summary[
                    (summary["shape"] == shape)
                    & (summary["backend"] == backend)
                    & (summary["batch"] == batch)
                    & (summary["layer"] == layer)
                ].sort_values("share")
                if (
                    layer == "sss"
                ):  # zero-matrix approximations (no d >= 1 fits) do no work: not drawn
                    rows = rows[rows["n_params"] > 0]
                if rows.empty:
                    continue
                us = 1e6 * rows["seconds_per_matvec"]
                err = [us - 1e6 * rows["seconds_min"], 1e6 * rows["seconds_max"] - us]
                first = rows.iloc[0]
                width = (
                    int(first["in_features"])
                    if pd.notna(first["in_features"])
                    else int(first["cols"])
                )
                ax.errorbar(
                    rows["share"],
                    us,
                    yerr=err,
                    ls=style,
                    marker="o" if layer == "sss" else None,
                    color=f"C{i}",
                    ms=3,
                    capsize=2,
                    label=f"{layer} {int(first['rows'])}x{width}"
                    + (f" (K={int(first['n_stages'])})" if layer == "sss" else ""),
                )
        ax.set_yscale("log")
        ax.set_xlabel("parameter share s")
        ax.set_ylabel("µs per matrix-vector product")
        name = BACKEND_NAMES.get(backend, backend)
        ax.set_title(
            f"{name}, one vector" if backend != "torch" else f"{name}, batch {batch}",
            fontsize=9,
        )
        ax.legend(fontsize=6.5)
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, speed_claims(summary))
