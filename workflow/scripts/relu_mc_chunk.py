"""One chunk of the 1-D Monte Carlo: train n networks of one width and classify each run.
Checkpoints every few checks beside its output, so a killed job resumes where it stopped."""

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json
from weightspace.relu.mc1d import MCConfig, run_chunk

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    variant = dict(cfg["variant"])
    name = variant.pop("name")
    offset, width = float(sm.wildcards.offset), int(sm.wildcards.width)
    chunk = int(sm.wildcards.chunk)
    seed = derive_seed(cfg["seed"], "relu_mc", name, sm.wildcards.offset, width, chunk)
    job.record.seeds["chunk"] = seed
    mc_config = MCConfig.from_dict(variant)
    checkpoint = job.checkpoint(seed=seed)
    state = checkpoint.load()
    if state is not None:
        job.log.info("resuming after %d checks", state["checks_done"])
        job.record.notes.append(f"resumed after {state['checks_done']} checks")

    def save(chunk_state):
        checkpoint.save(chunk_state.to_dict())

    def progress(info):
        job.log.info(
            "check %d: %d live, %s", info["check"], info["live"], info["counts"]
        )

    result = run_chunk(
        mc_config,
        seed,
        cfg["runs"],
        width,
        offset,
        device=job.device,
        progress=progress,
        state=state,
        checkpoint_every=cfg["checkpoint_every"],
        checkpoint=save,
    )
    out = result.to_dict() | {"variant": name, "chunk": chunk}
    atomic_write_json(sm.output.result, out)
    job.record.metrics.update(
        counts=result.counts, checks_run=result.checks_run, p_cross=out["p_cross"]
    )
