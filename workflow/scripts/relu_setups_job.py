"""All configurations of the setups grid for one distribution: per (parameterisation, optimiser)
the learning-rate grid × bias inits as one batched model (in batches of at most max_batch_nets
nets), then, if configured, the refinement around each bias init's best grid lr.

Finished batches are appended to a checkpoint beside the output, so a killed job resumes with
the batches it has not finished."""

import json
import os
from pathlib import Path

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json
from weightspace.relu.setups import (
    SetupConfig,
    SetupResult,
    base_lr,
    best_lr_result,
    refined_lr_grid,
    run_setup_grid,
)

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
        saved = json.loads(checkpoint.read_text())
        if saved["fingerprint"] != fingerprint:
            raise RuntimeError(f"checkpoint {checkpoint} belongs to another configuration; "
                               "delete it to start this job afresh")
        done = saved["results"]
        job.log.info("resuming with %d finished configurations from %s", len(done), checkpoint)
        job.record.notes.append(f"resumed with {len(done)} finished configurations")

    def key(param, opt, bias, lr):
        return (param, opt, bias, repr(float(lr)))

    finished = {key(e["config"]["parameterisation"], e["config"]["optimizer"],
                    e["config"]["bias_init"], e["config"]["lr"]): e for e in done}
    per_batch = max(1, cfg["max_batch_nets"] // cfg["nets"])

    def train(base, settings, stage):
        """Results of (bias_init, lr) settings of one (parameterisation, optimiser), in order."""
        todo = [s for s in settings if key(base.parameterisation, base.optimizer, *s) not in finished]
        for start in range(0, len(todo), per_batch):
            batch = todo[start:start + per_batch]

            def progress(info):
                if info["step"] % (info["steps"] // 4 or 1) == 0 or info["step"] == info["steps"]:
                    job.log.info("%s/%s %s, configurations %d-%d of %d: step %d/%d, %d stopped "
                                 "(NaN), best valid RMSE %.4g", base.parameterisation,
                                 base.optimizer, stage, start + 1, start + len(batch), len(todo),
                                 info["step"], info["steps"], info["stopped"],
                                 info["best_valid_rmse_min"])

            for result in run_setup_grid(base, batch, seed, device=job.device, progress=progress):
                c = result.config
                entry = result.to_dict() | {"stage": stage}
                finished[key(c.parameterisation, c.optimizer, c.bias_init, c.lr)] = entry
                done.append(entry)
            atomic_write_json(checkpoint, {"fingerprint": fingerprint, "results": done})
        return [SetupResult.from_dict(finished[key(base.parameterisation, base.optimizer, *s)])
                for s in settings]

    protocol = {k: cfg[k] for k in ("width", "steps", "batch_size", "valid_every", "train_per_dim",
                                    "n_valid", "n_test", "best_test_uses_valid", "dtype")}
    order = []
    for param in cfg["parameterisations"]:
        for opt in cfg["optimizers"]:
            base = SetupConfig(parameterisation=param, optimizer=opt, distribution=dist,
                               n_nets=cfg["nets"], **protocol)
            centre = base_lr(opt, param)
            grid = [(b, centre * cfg["lr_factor"] ** k)
                    for b in cfg["bias_inits"] for k in cfg["lr_exponents"]]
            results = train(base, grid, "grid")
            order += [key(param, opt, *s) for s in grid]
            refine = [k for k in cfg["refine_exponents"] if k != 0]
            if refine:
                finer = []
                for b in cfg["bias_inits"]:
                    best = best_lr_result(r for r in results if r.config.bias_init == b)
                    if best is not None:
                        finer += [(b, lr) for lr in refined_lr_grid(best.config.lr, refine)]
                train(base, finer, "refine")
                order += [key(param, opt, *s) for s in finer]
    entries = [finished[k] for k in dict.fromkeys(order)]
    atomic_write_json(sm.output.result, {"distribution": dist, "seed": seed, "results": entries})
    ok = [e for e in entries if e["status"] == "ok"]
    job.record.metrics.update(configurations=len(entries), diverged=len(entries) - len(ok),
                              nets=sum(len(e["ystd"]) for e in entries))
    if checkpoint.exists():
        os.remove(checkpoint)
