"""Train endpoint A (small batch) or B (large batch) of Fig. 5. A run that diverges
(the original's README warns of NaNs at batch 8) is retried with the next seed, and the
failure is recorded."""

import os

import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_torch_save
from weightspace.teleport.datasets import load_parts, loader
from weightspace.teleport.networks import DATA_SHAPES, build_network
from weightspace.training.loop import train

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    shape, classes = DATA_SHAPES[cfg["dataset"]]
    parts = load_parts(
        cfg["dataset"],
        mnist_file=sm.input.data,
        data=cfg["data"],
        augment=cfg["augment"],
    )
    checkpoint = job.checkpoint()
    failures = []
    for attempt in range(cfg["max_attempts"]):
        seed = derive_seed(
            cfg["seed"], "teleport", "flatness", cfg["endpoint"], attempt
        )
        torch.manual_seed(seed)
        model = build_network(cfg["model"], shape, classes)
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=cfg["lr"],
            momentum=cfg["momentum"],
            weight_decay=cfg["weight_decay"],
        )
        # the original trains without shuffling
        batches = loader(parts.train, parts, cfg["batch_size"], shuffle=False)
        path = f"{checkpoint.path}.attempt{attempt}"
        result = train(
            model,
            batches,
            {},
            optimizer,
            cfg["epochs"],
            device=job.device,
            checkpoint_path=path,
            log=job.log,
        )
        if os.path.exists(path):
            os.remove(path)
        if result.completed:
            break
        failures.append(
            {"attempt": attempt, "seed": seed, "epoch": result.diverged_epoch}
        )
        job.log.warning(
            "attempt %d diverged at epoch %s; retrying with the next seed",
            attempt,
            result.diverged_epoch,
        )
    else:
        raise RuntimeError(
            f"endpoint {cfg['endpoint']} diverged in all {cfg['max_attempts']} attempts "
            f"({failures}); lower teleport.fig5_flatness.lr or raise max_attempts"
        )
    atomic_torch_save(model.cpu().state_dict(), sm.output.model)
    job.record.seeds["train"] = seed
    job.record.metrics.update(
        train_loss=result.final["train_loss"],
        train_acc=result.final.get("train_acc"),
        diverged_attempts=failures,
    )
