"""Fig. 7 statistics for the architectures of one job: the change of the
gradient-to-weight norm ratio under teleportation, per CoB range. Each architecture
draws from its own seed, so its rows do not depend on which job computes it."""

import numpy as np
import pandas as pd
import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.teleport.datasets import batch_list, load_parts
from weightspace.teleport.gradients import gradient_change
from weightspace.teleport.model import TeleportableModel
from weightspace.teleport.networks import DATA_SHAPES, build_network, model_id

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    shape, classes = DATA_SHAPES[cfg["dataset"]]
    parts = load_parts(cfg["dataset"], mnist_file=sm.input.data, data=cfg["data"])
    grid = cfg["cob_ranges"]
    ranges = np.linspace(grid["start"], grid["stop"], grid["count"])
    tables, cob_sizes = [], {}
    for spec in cfg["models"]:
        name = model_id(spec)
        job.log.info("model %s", name)
        seed = derive_seed(cfg["seed"], "teleport", "gradients", name)
        torch.manual_seed(seed)
        model = build_network(spec, shape, classes)
        net = TeleportableModel(
            model, torch.zeros(2, *shape), compound_stale_cob=cfg["compound_stale_cob"]
        ).to(job.device)
        # as the original: batch statistics, dropout (same masks for W and TW)
        net.train()
        generator = torch.Generator().manual_seed(seed)
        batches = [
            (x.to(job.device), y.to(job.device))
            for x, y in batch_list(parts, cfg["batch_size"], cfg["batches"], generator)
        ]
        rows = gradient_change(net, batches, ranges, cfg["teleports"], generator)
        tables.append(pd.DataFrame(rows).assign(model=name))
        cob_sizes[name] = net.get_cob_size()
    with atomic_path(sm.output.csv) as tmp:
        pd.concat(tables, ignore_index=True).to_csv(
            tmp, index=False, float_format="%.8g"
        )
    job.record.metrics.update(models=list(cob_sizes), cob_sizes=cob_sizes)
