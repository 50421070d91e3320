"""Train the runs of one rbd_table1 job (one network, data set and method, some seeds);
a killed job resumes after its last finished run."""

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
    arrays = load_arrays(
        cfg["dataset"],
        mnist_file=sm.input.data,
        data=cfg.get("data"),
        seed=derive_seed(cfg["seed"], "rbd", "validation"),
    )
    validation = evaluation_view(arrays, arrays.validation)
    steps = len(arrays.train[1]) // cfg["batch_size"]
    if cfg["max_steps_per_epoch"] is not None:
        steps = min(steps, cfg["max_steps_per_epoch"])
    method = Method(
        cfg["method"],
        learning_rate(cfg["network"], cfg["dataset"], cfg["method"]),
        d=cfg.get("d", 250),
        fpd_stale_coordinates=cfg.get("fpd_stale_coordinates", False),
        nes_sigma=cfg.get("nes", {}).get("sigma", 0.01),
        chunk=cfg["chunk"],
    )
    # NES: its declared budget of updates, one evaluation at the end
    epochs, per_epoch = (
        (1, cfg["nes"]["updates"]) if method.name == "nes" else (cfg["epochs"], steps)
    )
    checkpoint = job.checkpoint()
    done = checkpoint.load() or []
    channels, size = arrays.train[0].shape[1], arrays.train[0].shape[-1]
    for index in cfg["seeds"][len(done) :]:
        seed = derive_seed(cfg["seed"], "rbd", cfg["dataset"], cfg["network"], index)
        torch.manual_seed(seed)
        model = build_model(
            NETWORKS[cfg["network"]], in_channels=channels, image_size=size
        )
        initialize_weights(
            model, "xavier_uniform"
        )  # Keras: Glorot kernels, zero biases
        batches = batch_stream(
            arrays,
            cfg["batch_size"],
            cfg["augment"],
            torch.Generator().manual_seed(derive_seed(seed, "batches")),
        )
        run = train_method(
            model,
            method,
            derive_seed(seed, "directions"),
            batches,
            validation,
            epochs,
            per_epoch,
            log=job.log.info,
        )
        if arrays.test is not None and run["status"] == "completed":
            run["test"] = evaluate_accuracy(
                model, *evaluation_view(arrays, arrays.test)
            )
        run.update(
            dataset=cfg["dataset"],
            network=cfg["network"],
            method=method.name,
            lr=method.lr,
            seed_index=index,
            seed=seed,
            validation_offset=arrays.validation_offset,
        )
        done.append(run)
        checkpoint.save(done)
    atomic_write_json(sm.output.result, {"runs": done})
    job.record.metrics.update(runs=len(done), lr=method.lr)
