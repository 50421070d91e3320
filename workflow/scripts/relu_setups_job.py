"""All configurations of the setups grid for one distribution
(weightspace.relu.setups.run_distribution).

The finished configurations are checkpointed after every batch beside the output, so a
killed job resumes with the batches it has not finished."""

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json
from weightspace.relu.setups import run_distribution

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    dist = sm.wildcards.dist
    seed = derive_seed(cfg["seed"], "relu_setups")
    job.record.seeds["setups"] = seed
    checkpoint = job.checkpoint(seed=seed)
    done = checkpoint.load() or []
    if done:
        job.log.info("resuming with %d finished configurations", len(done))
        job.record.notes.append(f"resumed with {len(done)} finished configurations")

    entries = run_distribution(
        cfg,
        dist,
        seed,
        device=job.device,
        done=done,
        save=checkpoint.save,
        log=job.log.info,
    )
    atomic_write_json(
        sm.output.result, {"distribution": dist, "seed": seed, "results": entries}
    )
    ok = [e for e in entries if e["status"] == "ok"]
    job.record.metrics.update(
        configurations=len(entries),
        diverged=len(entries) - len(ok),
        nets=sum(len(e["ystd"]) for e in entries),
    )
