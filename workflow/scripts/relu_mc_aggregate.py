"""Combine all Monte Carlo chunks into one table of p_cross per (variant, offset, width)."""

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path, read_json
from weightspace.relu.mc_summary import combine_chunks

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    chunks = [read_json(path) for path in sm.input]
    summary = combine_chunks(chunks, job.config["relu.mc"], f"{sm.rule} chunks")
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    job.record.metrics["rows"] = len(summary)
    for row in summary.itertuples():
        job.log.info(
            "%s offset %g m=%d: p_cross %.3f [%.3f, %.3f] of %d runs",
            row.variant,
            row.offset,
            row.width,
            row.p_cross,
            row.wilson_low,
            row.wilson_high,
            row.runs,
        )
