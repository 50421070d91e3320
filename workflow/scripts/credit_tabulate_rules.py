"""credit_table_rules: top-1 and top-5 accuracy per learning rule and model, with the
paper's values and claims beside ours."""

from weightspace.credit.jobs import table_seeds
from weightspace.credit.presets import label
from weightspace.credit.summaries import (
    rules_table,
    runs_of,
    settings_text,
    table_claims,
)
from weightspace.pipeline.chunks import check_chunks, read_runs
from weightspace.pipeline.job import script_job
from weightspace.plotting.tables import render_table
from weightspace.provenance.atomic import atomic_path, atomic_write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    credit = {
        key.removeprefix("credit."): value
        for key, value in job.config.items()
        if key.startswith("credit.")
    }
    dataset = credit["dataset"]
    table_cfg = credit["table_rules"]
    seeds = table_seeds(credit)
    runs = runs_of(read_runs(sm.input), table_cfg["rules"], seeds)
    check_chunks(
        [(r["model"], r["variant"], r["seed_index"]) for r in runs],
        [
            (m, v, s)
            for m in table_cfg["models"]
            for v in table_cfg["rules"]
            for s in range(seeds[m])
        ],
        "credit_tabulate_rules runs",
    )
    summary = rules_table(runs, table_cfg["models"], table_cfg["rules"])
    settings = "; ".join(
        settings_text(credit, m, seeds[m]) for m in table_cfg["models"]
    )
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.4g")
    scale = job.config["scale"]
    where = (
        "the 1,000 held-out MNIST-subset images (the spec's quick proxy of the "
        "ImageNet table: short runs, not comparable with the paper's numbers)"
        if dataset == "mnist_subset"
        else "the ImageNet validation set"
    )
    html, tex = render_table(
        summary,
        f"{scale} scale: top-1 / top-5 accuracy (%) on {where}, mean and std over "
        f"the seeds, rules {', '.join(label(v) for v in table_cfg['rules'])}; "
        f"settings: {settings}; published: the paper's ImageNet values where entered "
        "(weightspace.credit.presets), its §10 result, and "
        "for the MLP the external MNIST reference (Akrout et al.'s code, 784-500-10)",
    )
    with atomic_path(sm.output.html) as tmp:
        open(tmp, "w").write(html)
    with atomic_path(sm.output.tex) as tmp:
        open(tmp, "w").write(tex)
    claims = table_claims(summary, runs)
    atomic_write_json(sm.output.claims, claims)
    job.record.metrics.update(
        runs=len(runs), claims_holding=sum(c["holds"] is True for c in claims)
    )
    job.log.info("\n%s", summary.to_string(index=False))
