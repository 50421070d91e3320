"""credit_fig_alignment: angle(W, B̃) per layer over training, one panel per rule and
a row per model (mean over seeds; the dashed line is the mean over layers)."""

from matplotlib import colormaps

from weightspace.credit.jobs import table_seeds
from weightspace.credit.presets import MODEL_LABELS, label
from weightspace.credit.summaries import alignment_claims, angles_frame, runs_of
from weightspace.pipeline.chunks import check_chunks, read_runs
from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    figure = job.config["credit.fig_alignment"]
    seeds = table_seeds(
        {
            "table_rules": job.config["credit.table_rules"],
            "model_settings": job.config["credit.model_settings"],
        }
    )
    runs = runs_of(read_runs(sm.input), figure["rules"], seeds)
    check_chunks(
        [(r["model"], r["variant"], r["seed_index"]) for r in runs],
        [
            (m, v, s)
            for m in figure["models"]
            for v in figure["rules"]
            for s in range(seeds[m])
        ],
        "credit_plot_alignment runs",
    )
    angles = angles_frame(runs)
    # x axis: steps for short runs, epochs (of data) for long ones
    x = "step" if angles["epoch"].max() <= 50 else "epoch"
    models, rules = figure["models"], figure["rules"]
    # a row of at most four rule panels; a model takes as many rows as it needs
    columns = min(4, len(rules))
    per_model = -(-len(rules) // columns)
    fig, axes = new_figure(
        columns,
        len(models) * per_model,
        width=2.6,
        height=2.2,
        squeeze=False,
        sharey=True,
    )
    for m in range(len(models)):  # the unused panels after each model's rules
        block = axes[m * per_model : (m + 1) * per_model].flat
        for ax in list(block)[len(rules) :]:
            ax.set_visible(False)
    for m, model in enumerate(models):
        for r, variant in enumerate(rules):
            row, col = m * per_model + r // columns, r % columns
            ax = axes[row, col]
            part = angles[(angles["model"] == model) & (angles["variant"] == variant)]
            curves = (
                part.groupby(["layer_index", x])["weight_angle"].mean().reset_index()
            )
            layers = curves["layer_index"].max() + 1
            for index, layer in curves.groupby("layer_index"):
                ax.plot(
                    layer[x],
                    layer["weight_angle"],
                    color=colormaps["viridis"](index / max(layers - 1, 1)),
                    lw=0.9,
                    marker="o" if len(layer) == 1 else None,  # diverged at once
                    ms=3,
                )
            mean = curves.groupby(x)["weight_angle"].mean()
            ax.plot(mean.index, mean.values, "k--", lw=1.2)
            diverged = (
                part.drop_duplicates("seed_index")["status"].ne("completed").sum()
            )
            title = f"{MODEL_LABELS.get(model, model)}: {label(variant)}"
            if diverged:
                title += f" ({diverged} diverged)"
            ax.set_title(title, fontsize=8)
            ax.set_ylim(0, max(95, float(part["weight_angle"].max()) + 5))
            ax.set_xlabel(x)
            if col == 0:
                ax.set_ylabel("angle(W, B̃) (deg)")
    fig.suptitle(
        "per-layer angle between forward and backward weights (colour: input layer "
        "dark, output layer yellow; dashed: mean over layers; mean over seeds)",
        fontsize=8,
    )
    fig.tight_layout()
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        angles.to_csv(tmp, index=False, float_format="%.6g")
    claims = alignment_claims(angles)
    atomic_write_json(sm.output.claims, claims)
    job.record.metrics.update(
        runs=len(runs), claims_holding=sum(c["holds"] is True for c in claims)
    )
