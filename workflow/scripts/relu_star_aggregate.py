"""Pool the star chunks per width: both escape fractions with Wilson intervals at the end of
every training stage."""

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path, read_json
from weightspace.relu.star_summary import chunk_results, fractions_table, stage_budgets

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["relu.star"]
    documents = [read_json(path) for path in sm.input]
    results = chunk_results(documents, cfg, f"{sm.rule} chunks")
    table = fractions_table(results, stage_budgets(cfg["epochs"], cfg["stage_epochs"]))
    with atomic_path(sm.output.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    final = table[table["epochs"] == table["epochs"].max()]
    for row in final.itertuples():
        job.log.info(
            "m=%d (%d nets, %d epochs): kink crossed %.3f [%.3f, %.3f], MSE below "
            "threshold %.3f [%.3f, %.3f]",
            row.width,
            row.n_nets,
            row.epochs,
            row.fraction_kink_crossed,
            row.kink_low,
            row.kink_high,
            row.fraction_mse_crossed,
            row.mse_low,
            row.mse_high,
        )
    job.record.metrics["final"] = final.to_dict(orient="records")
