"""rbd_fig_correlation: cosine between the step and the mini-batch gradient over
training (mean and min/max per epoch; per-variable means) for Table 1's RBD and FPD
runs, against sqrt(d/D)."""

import json

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.rbd.summaries import correlation, correlation_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    runs = [run for path in sm.input for run in json.load(open(path))["runs"]]
    summary = correlation(runs)
    cells = list(
        summary[["dataset", "network"]].drop_duplicates().itertuples(index=False)
    )
    fig, axes = new_figure(
        len(cells), 2, width=3.4, height=3.0, squeeze=False, layout="constrained"
    )
    for column, (dataset, network) in enumerate(cells):
        cell = summary[
            (summary["dataset"] == dataset) & (summary["network"] == network)
        ]
        whole, layers = axes[0, column], axes[1, column]
        for method, rows in cell.groupby("method", sort=False):
            line = whole.plot(
                rows["epoch"],
                rows["cosine_mean"],
                marker="o",
                ms=3,
                label=method.upper(),
            )[0]
            whole.fill_between(
                rows["epoch"],
                rows["cosine_min"],
                rows["cosine_max"],
                color=line.get_color(),
                alpha=0.2,
            )
            variables = [c for c in rows.columns if c.startswith("variable")]
            for i, name in enumerate(variables):
                layers.plot(
                    rows["epoch"],
                    rows[name],
                    color=line.get_color(),
                    lw=0.8,
                    alpha=0.4 + 0.6 * i / max(1, len(variables) - 1),
                    label=method.upper() if i == 0 else None,
                )
        whole.axhline(
            cell["reference"].iloc[0], color="k", ls="--", lw=0.8, label="√(d/D)"
        )
        for ax in (whole, layers):
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
        whole.set_title(f"{network.upper()}-{dataset}: whole network", fontsize=8)
        layers.set_title("per variable (kernels and biases)", fontsize=8)
        whole.legend(fontsize=6)
        layers.legend(fontsize=6)
    axes[0, 0].set_ylabel("cosine(step, gradient)")
    axes[1, 0].set_ylabel("cosine per variable")
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, correlation_claims(summary))
