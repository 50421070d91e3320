"""Train the runs of one credit job (one model and update-noise variance, some rule
variants and seeds); a killed job resumes after its last finished run, and inside a
run from its last checkpoint (credit.checkpoint_every_steps)."""

from weightspace.credit.datasets import ImageFolderData, load_mnist_subset
from weightspace.credit.presets import IN_CHANNELS, NUM_CLASSES
from weightspace.credit.runs import Protocol, train_run
from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    protocol = Protocol.from_job(cfg)
    dataset = cfg["dataset"]
    if dataset == "imagenet":
        data = ImageFolderData(
            cfg["data"]["imagenet_root"],
            protocol.batch_size,
            protocol.eval_batch_size,
            protocol.drop_eval_remainder,
            num_workers=protocol.num_workers,
            pin_memory=job.device.startswith("cuda"),
            num_classes=NUM_CLASSES[dataset],
        )
        job.record.data.update(data.checksums())
    else:
        data, checksums = load_mnist_subset(
            sm.input.data,
            protocol.batch_size,
            protocol.eval_batch_size,
            protocol.drop_eval_remainder,
            input_pool=cfg["input_pool"],
        )
        job.record.data.update(checksums)
    job.log.info(
        "%s on %s: %d steps per epoch, %d evaluation images",
        cfg["model"],
        dataset,
        data.steps_per_epoch,
        data.eval_size,
    )
    checkpoint = job.checkpoint()
    saved = checkpoint.load() or {"done": [], "current": None}
    done = saved["done"]
    for index, run in enumerate(cfg["runs"]):
        if index < len(done):
            continue
        seed = derive_seed(
            cfg["seed"], "credit", dataset, cfg["model"], run["seed_index"]
        )
        current = saved["current"]
        resume = current["state"] if current and current["index"] == index else None

        def store(state, index=index):
            checkpoint.save({"done": done, "current": {"index": index, "state": state}})

        result = train_run(
            cfg["model"],
            run["variant"],
            seed,
            data,
            protocol,
            cfg["alignment"],
            cfg["noise"],
            num_classes=NUM_CLASSES[dataset],
            in_channels=IN_CHANNELS[dataset],
            device=job.device,
            resume=resume,
            on_checkpoint=store,
            log=job.log,
        )
        result.update(dataset=dataset, seed_index=run["seed_index"])
        done.append(result)
        checkpoint.save({"done": done, "current": None})
    atomic_write_json(sm.output.result, {"runs": done})
    diverged = sum(r["status"] != "completed" for r in done)
    job.record.metrics.update(runs=len(done), diverged=diverged)
    job.record.seeds.update(
        {f"{r['variant']}/{r['seed_index']}": r["seed"] for r in done}
    )
    job.log.info("%d runs, %d diverged", len(done), diverged)
