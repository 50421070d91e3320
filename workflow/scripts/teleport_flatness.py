"""Loss and accuracy along the line between the trained endpoints A and B, before and
after teleporting both (Fig. 5)."""

import numpy as np
import pandas as pd
import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.teleport.datasets import load_parts, loader
from weightspace.teleport.flatness import profile
from weightspace.teleport.model import TeleportableModel
from weightspace.teleport.networks import DATA_SHAPES, build_network

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    base = cfg["seed"]
    shape, classes = DATA_SHAPES[cfg["dataset"]]
    parts = load_parts(
        cfg["dataset"],
        mnist_file=sm.input.data,
        data=cfg["data"],
        augment=cfg["augment"],
    )
    example = torch.zeros(2, *shape)
    generator = torch.Generator().manual_seed(derive_seed(base, "teleport", "flatness"))
    endpoints = {}
    for name, path in (("A", sm.input.a), ("B", sm.input.b)):
        model = build_network(cfg["model"], shape, classes)
        model.load_state_dict(torch.load(path, weights_only=True))
        net = TeleportableModel(model, example).to(job.device)
        weights = net.get_weights()
        if name == "B" and cfg["same_cob"]:
            cob = endpoints["A"][1][1]
        else:
            cob = net.generate_random_cob(cfg["cob_range"], generator=generator)
        net.teleport(cob)
        ones = torch.ones_like(cob)
        endpoints[name] = ((weights, ones), (net.get_weights(), cob))
    loaders = {
        "train": loader(parts.train, parts, cfg["eval_batch_size"]),
        "test": loader(parts.test, parts, cfg["eval_batch_size"]),
    }
    grid = cfg["alphas"]
    alphas = np.linspace(grid["start"], grid["stop"], grid["count"])
    rows = []
    for pair, index in (("before", 0), ("after", 1)):
        ends = (endpoints["A"][index], endpoints["B"][index])
        for row in profile(
            net, ends, alphas, loaders, cfg["interpolate_cob"], job.device
        ):
            rows.append({"pair": pair, **row})
    with atomic_path(sm.output.csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.8g")
