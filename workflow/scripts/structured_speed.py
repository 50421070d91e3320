"""sss_fig_speed, one shape: PyTorch CPU time per matrix-vector product of the dense layer and of the SSS
layer approximating the same random matrix, per share and batch size, one thread."""

import numpy as np
import pandas as pd
import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.structured import SSSLayer, approximate_sss
from weightspace.structured.experiments import time_forward

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    shape = cfg["shape"]
    seed = derive_seed(cfg["seed"], "structured_speed", shape["name"])
    job.record.seeds["matrix"] = seed
    rng = np.random.default_rng(seed)
    weight = rng.uniform(-1, 1, size=(shape["rows"], shape["cols"]))
    bias = rng.uniform(-1, 1, size=shape["rows"])
    dense = torch.nn.Linear(shape["cols"], shape["rows"])
    with torch.no_grad():
        dense.weight.copy_(torch.from_numpy(weight))
        dense.bias.copy_(torch.from_numpy(bias))
    timing = {"repeats": cfg["repeats"], "iterations": cfg["iterations"], "warmup": cfg["warmup"]}
    rows = []
    for share in cfg["shares"]:
        approx = approximate_sss(weight, share, shape["n_stages"])
        layer = SSSLayer.from_approximation(approx, bias=bias)
        for batch in cfg["batches"]:
            for name, lay, n_params, d in (("dense", dense, weight.size, 0),
                                           ("sss", layer, approx.n_params, approx.info["state_dim"])):
                times = time_forward(lay, batch, seed=seed, **timing)
                rows += [{"shape": shape["name"], "rows": shape["rows"], "cols": shape["cols"],
                          "n_stages": shape["n_stages"], "share": share, "batch": batch, "layer": name,
                          "iteration": i, "seconds_per_matvec": t, "n_params": n_params, "state_dim": d}
                         for i, t in enumerate(times)]
            job.log.info("share %g batch %d: dense %.3g µs, sss %.3g µs per matvec (d=%d)", share, batch,
                         1e6 * np.median([r["seconds_per_matvec"] for r in rows[-2 * cfg["iterations"]:-cfg["iterations"]]]),
                         1e6 * np.median([r["seconds_per_matvec"] for r in rows[-cfg["iterations"]:]]),
                         approx.info["state_dim"])
    with atomic_path(sm.output.csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")
    job.record.metrics["rows"] = len(rows)
