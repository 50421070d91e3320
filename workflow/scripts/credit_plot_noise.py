"""credit_fig_noise: final top-1 and mean final angle(W, B̃) against the variance of the
noise added to the updates, one curve per rule (mean ± std over seeds)."""

from weightspace.credit.presets import MODEL_LABELS, label
from weightspace.credit.summaries import noise_claims, noise_table, runs_of
from weightspace.pipeline.chunks import check_chunks, read_runs
from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    noise = job.config["credit.fig_noise"]
    runs = runs_of(read_runs(sm.input), noise["rules"], noise["seeds"])
    check_chunks(
        [(r["variant"], float(r["noise"]["variance"]), r["seed_index"]) for r in runs],
        [
            (v, float(var), s)
            for v in noise["rules"]
            for var in noise["variances"]
            for s in range(noise["seeds"])
        ],
        "credit_plot_noise runs",
    )
    table = noise_table(runs)
    variances = sorted(float(v) for v in noise["variances"])
    position = {v: i for i, v in enumerate(variances)}
    fig, (ax_acc, ax_angle) = new_figure(2, 1, width=4.2, height=3.2)
    for index, (variant, part) in enumerate(table.groupby("variant", sort=False)):
        xs = [position[v] for v in part["noise_variance"]]
        style = dict(fmt="o-", color=f"C{index}", ms=3, capsize=2, label=label(variant))
        ax_acc.errorbar(xs, part["top1_mean"], yerr=part["top1_std"], **style)
        ax_angle.errorbar(xs, part["angle_mean"], yerr=part["angle_std"], **style)
        for x, n in zip(xs, part["diverged"]):
            if n:  # a diverged run has no final accuracy: say so where it is missing
                ax_acc.annotate(
                    f"{label(variant)}: {n} diverged",
                    (x, 0.02 + 0.06 * index),
                    xycoords=("data", "axes fraction"),
                    color=f"C{index}",
                    fontsize=6,
                    ha="center",
                )
    for ax, ylabel in (
        (ax_acc, "final top-1 (%)"),
        (ax_angle, "final mean angle(W, B̃) (deg)"),
    ):
        ax.set_xticks(range(len(variances)), [f"{v:g}" for v in variances])
        ax.set_xlabel(f"variance of the {noise['distribution']} update noise")
        ax.set_ylabel(ylabel)
    ax_acc.set_title(MODEL_LABELS.get(noise["model"], noise["model"]), fontsize=8)
    ax_angle.set_title("BP: 0 by definition (B̃ = W)", fontsize=8)
    ax_acc.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    claims = noise_claims(table)
    atomic_write_json(sm.output.claims, claims)
    job.record.metrics.update(
        runs=len(runs), claims_holding=sum(c["holds"] is True for c in claims)
    )
