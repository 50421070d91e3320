"""Angles between gradients, micro-teleportation displacements and random vectors for
every (model, data set, batch size) of Fig. 4."""

import pandas as pd
import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.teleport.datasets import batch_list, load_parts
from weightspace.teleport.micro import micro_angles
from weightspace.teleport.model import TeleportableModel
from weightspace.teleport.networks import DATA_SHAPES, build_network, model_id

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    real = [d for d in cfg["datasets"] if d != "random"][0]
    shape, classes = DATA_SHAPES[real]
    rows = []
    for dataset in cfg["datasets"]:
        parts = load_parts(
            dataset,
            mnist_file=sm.input.data[0] if len(sm.input.data) else None,
            data=cfg["data"],
            seed=derive_seed(cfg["seed"], "teleport", "micro", "data"),
            random_shape=shape,
        )
        for spec in cfg["models"]:
            for batch_size in cfg["batch_sizes"]:
                key = (model_id(spec), dataset, batch_size)
                seed = derive_seed(cfg["seed"], "teleport", "micro", *key)
                torch.manual_seed(seed)
                model = build_network(spec, shape, classes)
                net = TeleportableModel(model, torch.zeros(2, *shape)).to(job.device)
                generator = torch.Generator().manual_seed(seed)
                batches = [
                    (x.to(job.device), y.to(job.device))
                    for x, y in batch_list(
                        parts,
                        batch_size,
                        cfg["iterations"],
                        generator,
                        cfg["same_first_batch"],
                    )
                ]
                angles = micro_angles(net, batches, cfg["cob_range"], generator)
                d = net.get_weights().numel()
                for i, row in enumerate(angles):
                    rows.append(
                        {
                            "model": key[0],
                            "dataset": dataset,
                            "batch_size": batch_size,
                            "dimension": d,
                            "iteration": i,
                            **row,
                        }
                    )
                job.log.info("%s %s batch %d: d = %d", *key, d)
    with atomic_path(sm.output.csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.10g")
    job.record.metrics["settings"] = len(rows) // cfg["iterations"]
