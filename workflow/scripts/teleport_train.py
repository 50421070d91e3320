"""Train one job's runs of the teleportation matrix (Figs 6, 8, 9, 10): a chunk of one
cell's runs, of one or several arms; a killed job resumes after its last finished run,
and inside a run after its last finished epoch."""

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json
from weightspace.teleport.datasets import load_parts
from weightspace.teleport.training import train_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    parts = load_parts(
        cfg["dataset"],
        mnist_file=sm.input.data,
        data=cfg["data"],
        n_validation=cfg["protocol"]["validation"],
        seed=derive_seed(cfg["seed"], "teleport", "validation"),
    )
    runs = train_job(parts, cfg, job.checkpoint(), device=job.device, log=job.log)
    atomic_write_json(sm.output.result, {"runs": runs})
    diverged = sum(r["status"] == "diverged" for r in runs)
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    job.record.metrics.update(runs=len(runs), arms=arms, diverged=diverged)
    job.log.info("%d runs, %d diverged", len(runs), diverged)
