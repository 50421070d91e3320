"""relu_fig_setups: mean test RMSE relative to the zero bias init against the input dimension d,
one panel per (parameterisation, optimiser), one curve per bias init with ±2 SE bands."""

import numpy as np

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json, read_json
from weightspace.relu import setups_summary as summary

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["relu.setups"]
    best = summary.best_results(read_json(sm.input.best))
    params, opts, inits = (
        cfg["parameterisations"],
        cfg["optimizers"],
        cfg["figure_bias_inits"],
    )
    dims = summary.rad_dims(cfg["distributions"])
    frame = summary.figure_frame(best, params, opts, inits, dims)

    fig, axes = new_figure(
        ncols=len(opts),
        nrows=len(params),
        width=2.4,
        height=2.3,
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for i, param in enumerate(params):
        for j, opt in enumerate(opts):
            ax = axes[i, j]
            panel = frame[
                (frame["parameterisation"] == param) & (frame["optimizer"] == opt)
            ]
            for k, bias in enumerate(inits):
                rows = panel[panel["bias_init"] == bias].sort_values("d")
                mean, se = (
                    rows["relative_mean"].to_numpy(),
                    rows["relative_se"].to_numpy(),
                )
                ax.plot(
                    rows["d"],
                    mean,
                    marker="o",
                    ms=2.5,
                    lw=1.2,
                    color=f"C{k}",
                    label=summary.BIAS_LABELS[bias],
                )
                ax.fill_between(
                    rows["d"],
                    np.maximum(mean - 2 * se, 1e-3),
                    mean + 2 * se,
                    color=f"C{k}",
                    alpha=0.2,
                    lw=0,
                )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(dims, [str(d) for d in dims])
            ax.minorticks_off()
            if i == 0:
                ax.set_title(summary.OPT_LABELS[opt], fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{summary.PARAM_LABELS[param]}\nrel. mean test RMSE")
            if i == len(params) - 1:
                ax.set_xlabel("input dimension d")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(inits), 4),
        fontsize=8,
    )
    fig.suptitle(
        f"rad-distr-d, width {cfg['width']}, {cfg['nets']} nets, {cfg['steps']} steps; "
        "relative to the zero bias init, ±2 SE",
        fontsize=8,
    )
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    claims = summary.figure_claims(frame)
    job.record.metrics["claims_hold"] = sum(c["holds"] is True for c in claims)
    atomic_write_json(sm.output.claims, claims)
