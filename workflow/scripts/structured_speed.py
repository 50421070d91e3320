"""sss_fig_speed, one shape: time per matrix-vector product of the dense layer and of the SSS layers
approximating the same random matrix, per share: PyTorch on one CPU thread (each configured batch
size) and the C reference (one vector, each configured optimisation level, checked against Python).

The dense layer does not depend on the share: it is timed once per backend and batch (rows with an
empty share); the plot shows it at every share."""

from contextlib import nullcontext

import numpy as np
import pandas as pd
import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.structured import SSSLayer, approximate_sss
from weightspace.structured.cspeed import CBenchmark, description_records, flat_rows
from weightspace.structured.experiments import speed_matrices, time_forward

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    shape = cfg["shape"]
    seed = derive_seed(cfg["seed"], "structured_speed", shape["name"])
    job.record.seeds["matrix"] = seed
    prob = speed_matrices(shape["rows"], shape["cols"], np.random.default_rng(seed),
                          mismatched_models=cfg["speed_mismatched_models"])
    weight, dense_weight, bias = prob["weight"], prob["dense_weight"], prob["bias"]
    dense = torch.nn.Linear(dense_weight.shape[1], dense_weight.shape[0])
    with torch.no_grad():
        dense.weight.copy_(torch.from_numpy(dense_weight))
        dense.bias.copy_(torch.from_numpy(bias))
    timing = {"repeats": cfg["repeats"], "iterations": cfg["iterations"], "warmup": cfg["warmup"]}
    base = {"shape": shape["name"], "rows": shape["rows"], "cols": shape["cols"], "n_stages": shape["n_stages"]}
    dense_info = {"layer": "dense", "share": np.nan, "n_params": dense_weight.size, "state_dim": 0,
                  "flops": 2 * dense_weight.size, "in_features": dense_weight.shape[1]}
    rows = []

    def median_us(times):
        return 1e6 * float(np.median(times))

    for batch in cfg["batches"]:
        times = time_forward(dense, batch, seed=seed, **timing)
        rows += [{**base, **dense_info, "backend": "torch", "batch": batch, "iteration": i, "seconds_per_matvec": t}
                 for i, t in enumerate(times)]
        job.log.info("torch batch %d: dense %.3g µs per matvec", batch, median_us(times))

    levels = cfg["c_opt_levels"]
    with CBenchmark(levels) if levels else nullcontext() as bench:
        if bench is not None:
            job.log.info("C benchmark built with %s (%s) at %s", " ".join(bench.compiler), bench.version,
                         ", ".join(levels))
            job.record.metrics["c_compiler"] = f"{' '.join(bench.compiler)} ({bench.version})"
        for n_share, share in enumerate(cfg["shares"]):
            approx = approximate_sss(weight, share, shape["n_stages"])
            sss_info = {"layer": "sss", "share": share, "n_params": approx.n_params,
                        "state_dim": approx.info["state_dim"], "flops": 2 * approx.info["n_stored"],
                        "in_features": shape["cols"]}
            layer = SSSLayer.from_approximation(approx, bias=bias)
            for batch in cfg["batches"]:
                times = time_forward(layer, batch, seed=seed, **timing)
                rows += [{**base, **sss_info, "backend": "torch", "batch": batch, "iteration": i,
                          "seconds_per_matvec": t} for i, t in enumerate(times)]
                job.log.info("share %g (d=%d) torch batch %d: sss %.3g µs per matvec", share,
                             approx.info["state_dim"], batch, median_us(times))
            if bench is None:
                continue
            records = description_records(dense_weight, bias, approx.structure, bias, prob["u"],
                                          sss_shape=weight.shape)
            # both layers are checked against Python every time; the dense one is timed once
            results = bench.run(records, layers="both" if n_share == 0 else "sss", **timing)
            for opt, result in results.items():
                for r in flat_rows(result):
                    info = dense_info if r["layer"] == "dense" else sss_info
                    rows.append({**base, **info, **r, "backend": f"c_{opt}", "batch": 1})
                msg = f"sss {median_us(result['sss']['median_s']):.3g} µs"
                if result["dense"]["timed"]:
                    msg = f"dense {median_us(result['dense']['median_s']):.3g} µs, " + msg
                job.log.info("share %g (d=%d) C -%s: %s per matvec (checksum errors %.2g, %.2g)", share,
                             approx.info["state_dim"], opt, msg, result["dense"]["max_abs_error"],
                             result["sss"]["max_abs_error"])
                job.record.metrics.setdefault("c_max_abs_error", 0.0)
                job.record.metrics["c_max_abs_error"] = max(job.record.metrics["c_max_abs_error"],
                                                            result["dense"]["max_abs_error"],
                                                            result["sss"]["max_abs_error"])
    columns = ["shape", "rows", "cols", "n_stages", "backend", "share", "batch", "layer", "iteration",
               "seconds_per_matvec", "seconds_mean", "n_params", "state_dim", "flops", "in_features",
               "max_abs_error"]
    with atomic_path(sm.output.csv) as tmp:
        pd.DataFrame(rows).reindex(columns=columns).to_csv(tmp, index=False, float_format="%.6g")
    job.record.metrics["rows"] = len(rows)
