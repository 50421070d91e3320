"""One chunk of the 1-D Monte Carlo: train n networks of one width and classify each run.
Checkpoints every few checks beside its output, so a killed job resumes where it stopped."""

import os
from pathlib import Path

import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.relu.mc1d import MCConfig, run_chunk

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    variant = dict(cfg["variant"])
    name = variant.pop("name")
    offset, width, chunk = float(sm.wildcards.offset), int(sm.wildcards.width), int(sm.wildcards.chunk)
    seed = derive_seed(cfg["seed"], "relu_mc", name, sm.wildcards.offset, width, chunk)
    job.record.seeds["chunk"] = seed
    mc_config = MCConfig.from_dict(variant)
    checkpoint = Path(sm.params.checkpoint)
    state = None
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        same = (state["config"] == mc_config.to_dict() and state["seed"] == seed
                and state["n_runs"] == cfg["runs"] and state["width"] == width)
        if same:
            job.log.info("resuming from %s after %d checks", checkpoint, state["checks_done"])
            job.record.notes.append(f"resumed after {state['checks_done']} checks")
        else:  # left by a run with other settings: start afresh
            job.log.info("ignoring %s: it belongs to other settings", checkpoint)
            state = None

    def save(chunk_state):
        with atomic_path(checkpoint) as tmp:
            torch.save(chunk_state.to_dict(), tmp)

    def progress(info):
        job.log.info("check %d: %d live, %s", info["check"], info["live"], info["counts"])

    result = run_chunk(mc_config, seed, cfg["runs"], width, offset,
                       device=job.device, progress=progress, state=state,
                       checkpoint_every=cfg["checkpoint_every"], checkpoint=save)
    out = result.to_dict() | {"variant": name, "chunk": chunk}
    atomic_write_json(sm.output.result, out)
    job.record.metrics.update(counts=result.counts, checks_run=result.checks_run,
                              p_cross=out["p_cross"])
    if checkpoint.exists():
        os.remove(checkpoint)
