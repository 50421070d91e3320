"""All configurations of the setups grid for one distribution (weightspace.relu.setups.run_distribution).

Finished batches are appended to a checkpoint beside the output, so a killed job resumes with
the batches it has not finished."""

import os
from pathlib import Path

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json, read_json
from weightspace.relu.setups import run_distribution

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    dist = sm.wildcards.dist
    seed = derive_seed(cfg["seed"], "relu_setups")
    job.record.seeds["setups"] = seed
    checkpoint = Path(sm.params.checkpoint)
    fingerprint = {"config": cfg, "distribution": dist, "seed": seed}
    done = []
    if checkpoint.exists():
        saved = read_json(checkpoint)
        if saved["fingerprint"] != fingerprint:
            raise RuntimeError(f"checkpoint {checkpoint} belongs to another configuration; "
                               "delete it to start this job afresh")
        done = saved["results"]
        job.log.info("resuming with %d finished configurations from %s", len(done), checkpoint)
        job.record.notes.append(f"resumed with {len(done)} finished configurations")

    def save(entries):
        atomic_write_json(checkpoint, {"fingerprint": fingerprint, "results": entries})

    entries = run_distribution(cfg, dist, seed, device=job.device, done=done, save=save, log=job.log.info)
    atomic_write_json(sm.output.result, {"distribution": dist, "seed": seed, "results": entries})
    ok = [e for e in entries if e["status"] == "ok"]
    job.record.metrics.update(configurations=len(entries), diverged=len(entries) - len(ok),
                              nets=sum(len(e["ystd"]) for e in entries))
    if checkpoint.exists():
        os.remove(checkpoint)
