"""One chunk of the star experiment: train n nets of one width in stages of GD epochs and record
the first epoch of a kink crossing and of an MSE below the per-ray linear threshold per net.
The state is checkpointed after every stage beside the output, so a killed job resumes there."""

import time

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json
from weightspace.relu import star
from weightspace.relu.star_summary import result_to_dict

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    width, chunk = int(sm.wildcards.width), int(sm.wildcards.chunk)
    config = star.StarConfig(
        width=width,
        n_nets=cfg["nets"],
        rays=cfg["rays"],
        delta=cfg["delta"],
        dtype=cfg["dtype"],
        star_double_step=cfg["star_double_step"],
    )
    seed = derive_seed(cfg["seed"], "relu_star", width, chunk)
    job.record.seeds["chunk"] = seed
    checkpoint = job.checkpoint(seed=seed)
    saved = checkpoint.load()
    if saved is not None:
        state = star.move_state(saved, job.device)
        job.log.info("resuming at epoch %d", int(state["epoch"]))
        job.record.notes.append(f"resumed at epoch {int(state['epoch'])}")
    else:
        state = star.init_star_state(config, seed, device=job.device)

    def stage_done(info):
        job.log.info(
            "epoch %d: mean loss %.6g, loss/threshold min/median/max %s, kink crossed "
            "%.3f, MSE below threshold %.3f",
            info["epoch"],
            info["mean_loss"],
            [round(v, 6) for v in info["loss_over_threshold_min_median_max"]],
            info["fraction_kink_crossed"],
            info["fraction_mse_crossed"],
        )
        if info["epoch"] < cfg["epochs"]:
            checkpoint.save(star.move_state(state, "cpu"))

    started, start_epoch, last_line = time.monotonic(), int(state["epoch"]), [0.0]

    def heartbeat(epoch):  # a line a minute between stages, with an ETA
        now = time.monotonic()
        if now - last_line[0] < 60 or epoch <= start_epoch:
            return
        last_line[0] = now
        rate = (epoch - start_epoch) / (now - started)
        eta = (cfg["epochs"] - epoch) / rate
        job.log.info(
            "epoch %d/%d (%.1f%%), %.0f epochs/s, eta %.0f min",
            epoch,
            cfg["epochs"],
            100 * epoch / cfg["epochs"],
            rate,
            eta / 60,
        )

    star.train_star(
        state,
        cfg["epochs"],
        stage_epochs=cfg["stage_epochs"],
        progress=stage_done,
        heartbeat=heartbeat,
    )
    result = star.star_result(state)
    out = result_to_dict(result) | {
        "chunk": chunk,
        "seed": seed,
        "config": config.to_dict(),
    }
    atomic_write_json(sm.output.result, out)
    job.record.metrics.update(
        n_nets=result.n_nets,
        kink_crossed=result.n_kink_crossed,
        mse_crossed=result.n_mse_crossed,
        epochs=result.epoch,
    )
