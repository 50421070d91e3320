"""Train the runs of one random-bases job (weightspace.rbd.jobs: any experiment); a
killed job resumes after its last finished run."""

import torch

from weightspace.data.seeds import derive_seed
from weightspace.models import build_model, initialize_weights
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json
from weightspace.rbd.datasets import batch_stream, evaluation_view, load_arrays
from weightspace.rbd.presets import NETWORKS, learning_rate
from weightspace.rbd.training import Method, evaluate_accuracy, train_method

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    loaded = {}

    def arrays_of(dataset):
        if dataset not in loaded:
            loaded[dataset] = load_arrays(
                dataset,
                mnist_file=sm.input[dataset],
                data=cfg.get("data"),
                seed=derive_seed(cfg["seed"], "rbd", "validation"),
            )
        return loaded[dataset]

    if cfg["generator"] == "philox" and torch.device(job.device).type != "cpu":
        raise ValueError(
            f"rbd.generator 'philox' draws on the CPU, but this job runs on "
            f"{job.device}; set rbd.generator to 'torch' for GPU runs"
        )
    checkpoint = job.checkpoint()
    done = checkpoint.load() or []
    for spec in cfg["runs"][len(done) :]:
        arrays = arrays_of(spec["dataset"])
        steps = len(arrays.train[1]) // cfg["batch_size"]
        if cfg["max_steps_per_epoch"] is not None:
            steps = min(steps, cfg["max_steps_per_epoch"])
        method = Method(
            spec["method"],
            learning_rate(spec["network"], spec["dataset"], spec["method"]),
            d=spec["d"] or 1,
            weights_per_compartment=spec["weights_per_compartment"],
            split_dimensions=spec["split_dimensions"],
            fpd_stale_coordinates=cfg["fpd_stale_coordinates"],
            nes_sigma=cfg.get("nes", {}).get("sigma", 0.01),
            chunk=cfg["chunk"],
            generator=cfg["generator"],
            workers=spec["workers"],
        )
        # NES: its declared budget of updates, one evaluation at the end; W workers
        # take W batches per step, so an epoch has 1/W of the steps
        epochs, per_epoch = (
            (1, cfg["nes"]["updates"])
            if method.name == "nes"
            else (cfg["epochs"], max(1, steps // method.workers))
        )
        seed = derive_seed(
            cfg["seed"], "rbd", spec["dataset"], spec["network"], spec["seed_index"]
        )
        torch.manual_seed(seed)
        channels, size = arrays.train[0].shape[1], arrays.train[0].shape[-1]
        model = build_model(
            NETWORKS[spec["network"]], in_channels=channels, image_size=size
        )
        initialize_weights(model, "xavier_uniform")  # Keras: Glorot kernels, zero bias
        model.to(job.device)
        batches = batch_stream(
            arrays,
            cfg["batch_size"],
            cfg["augment"],
            torch.Generator().manual_seed(derive_seed(seed, "batches")),
            job.device,
        )
        job.log.info("run %d/%d: %s", len(done) + 1, len(cfg["runs"]), spec)
        run = train_method(
            model,
            method,
            derive_seed(seed, "directions"),
            batches,
            evaluation_view(arrays, arrays.validation, job.device),
            epochs,
            per_epoch,
            log=job.log.info,
        )
        if arrays.test is not None and run["status"] == "completed":
            run["test"] = evaluate_accuracy(
                model, *evaluation_view(arrays, arrays.test, job.device)
            )
        run.update(
            spec,
            lr=method.lr,
            seed=seed,
            generator=cfg["generator"],
            validation_offset=arrays.validation_offset,
        )
        done.append(run)
        checkpoint.save(done)
    atomic_write_json(sm.output.result, {"runs": done})
    job.record.metrics.update(runs=len(done))
