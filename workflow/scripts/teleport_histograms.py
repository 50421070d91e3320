"""Fig. 11 data: weight statistics and densities of the MLP at init, after the same-
distribution resampling and after one teleportation."""

import numpy as np
import pandas as pd
import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.teleport.histograms import (
    density,
    init_bound,
    weight_panels,
    weight_statistics,
)
from weightspace.teleport.networks import build_network
from weightspace.teleport.summaries import PANELS

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["teleport.fig11_histograms"]
    seed = derive_seed(job.config["seed"], "teleport", "histograms")
    torch.manual_seed(seed)
    shape = tuple(cfg["input_shape"])
    model = build_network(cfg["model"], shape, 10)
    generator = torch.Generator().manual_seed(seed)
    panels = weight_panels(
        model,
        torch.zeros(2, *shape),
        cfg["cob_range"],
        cfg["same_distr_range"],
        cfg["bins"],
        generator,
    )
    bound = init_bound(model)
    stats = pd.DataFrame(
        [
            {"panel": p, "init_bound": bound, **weight_statistics(panels[p], bound)}
            for p in PANELS
        ]
    )
    main = np.linspace(-0.25, 0.25, 501)
    zoom = np.concatenate([np.linspace(-0.13, -0.12, 51), np.linspace(0.12, 0.13, 51)])
    rows = []
    for panel in PANELS:
        for region, grid in (("main", main), ("zoom", zoom)):
            values = density(panels[panel], grid, cfg["kde_sample"], seed)
            rows += [
                {"panel": panel, "region": region, "x": x, "density": y}
                for x, y in zip(grid, values)
            ]
    with atomic_path(sm.output.csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.8g")
    with atomic_path(sm.output.stats) as tmp:
        stats.to_csv(tmp, index=False, float_format="%.8g")
