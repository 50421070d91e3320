"""One chunk of the star experiment: train n nets of one width in stages of GD epochs and record
the first epoch of a kink crossing and of an MSE below the per-ray linear threshold per net.
The state is checkpointed after every stage beside the output, so a killed job resumes there."""

import os
from pathlib import Path

import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.relu.star import StarConfig, init_star_state, move_state, star_result, train_star
from weightspace.relu.star_summary import result_to_dict

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    width, chunk = int(sm.wildcards.width), int(sm.wildcards.chunk)
    config = StarConfig(width=width, n_nets=cfg["nets"], rays=cfg["rays"], delta=cfg["delta"],
                        star_double_step=cfg["star_double_step"], dtype=cfg["dtype"])
    seed = derive_seed(cfg["seed"], "relu_star", width, chunk)
    job.record.seeds["chunk"] = seed
    checkpoint = Path(sm.params.checkpoint)
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        if saved["config"] != config.to_dict() or saved["seed"] != seed:
            raise RuntimeError(f"checkpoint {checkpoint} belongs to another configuration or "
                               "seed; delete it to start this chunk afresh")
        state = move_state(saved["state"], job.device)
        job.log.info("resuming from %s at epoch %d", checkpoint, int(state["epoch"]))
        job.record.notes.append(f"resumed at epoch {int(state['epoch'])}")
    else:
        state = init_star_state(config, seed, device=job.device)

    def stage_done(info):
        job.log.info("epoch %d: mean loss %.6g, loss/threshold min/median/max %s, kink crossed "
                     "%.3f, MSE below threshold %.3f", info["epoch"], info["mean_loss"],
                     [round(v, 6) for v in info["loss_over_threshold_min_median_max"]],
                     info["fraction_kink_crossed"], info["fraction_mse_crossed"])
        if info["epoch"] < cfg["epochs"]:
            with atomic_path(checkpoint) as tmp:
                torch.save({"config": config.to_dict(), "seed": seed,
                            "state": move_state(state, "cpu")}, tmp)

    train_star(state, cfg["epochs"], stage_epochs=cfg["stage_epochs"], progress=stage_done)
    result = star_result(state)
    out = result_to_dict(result) | {"chunk": chunk, "seed": seed, "config": config.to_dict()}
    atomic_write_json(sm.output.result, out)
    job.record.metrics.update(n_nets=result.n_nets, kink_crossed=result.n_kink_crossed,
                              mse_crossed=result.n_mse_crossed, epochs=result.epoch)
    if checkpoint.exists():
        os.remove(checkpoint)
