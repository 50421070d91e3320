"""Select the best-validation learning rate per (parameterisation, optimiser, bias init,
distribution) and list every trained configuration."""

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path, atomic_write_json, read_json
from weightspace.relu.setups import best_by_setting
from weightspace.relu.setups_summary import job_documents, load_job, results_frame

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["relu.setups"]
    documents = [read_json(path) for path in sm.input]
    documents = job_documents(documents, cfg["distributions"], f"{sm.rule} jobs")
    frame = results_frame(documents)
    with atomic_path(sm.output.csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    best = best_by_setting(r for doc in documents for r in load_job(doc))
    atomic_write_json(
        sm.output.best,
        {"metric": "best_test_rmse", "results": [r.to_dict() for r in best.values()]},
    )
    for (param, opt, bias, dist), r in sorted(best.items()):
        job.log.info(
            "%s %s %s %s: lr %.4g, best_valid %.4f, best_test %.4f",
            param,
            opt,
            bias,
            dist,
            r.config.lr,
            r.mean("best_valid_rmse"),
            r.mean("best_test_rmse"),
        )
    missing = len(
        frame.groupby(["distribution", "parameterisation", "optimizer", "bias_init"])
    ) - len(best)
    job.record.metrics.update(
        configurations=len(frame),
        settings=len(best),
        settings_all_diverged=missing,
        diverged=int((frame["status"] != "ok").sum()),
    )
