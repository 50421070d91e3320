"""structured_fig_speed, one shape: time per matrix-vector product of the dense layer
and of the SSS layers approximating the same random matrix, per share: PyTorch on one
CPU thread (each configured batch size) and the C reference (one vector, each configured
optimisation level, checked against Python). See
weightspace.structured.speed.speed_rows."""

from contextlib import nullcontext

import pandas as pd

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.structured.cspeed import CBenchmark
from weightspace.structured.speed import SPEED_COLUMNS, speed_rows

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    seed = derive_seed(cfg["seed"], "structured_speed", cfg["shape"]["name"])
    job.record.seeds["matrix"] = seed
    levels = cfg["c_opt_levels"]
    with CBenchmark(levels) if levels else nullcontext() as bench:
        if bench is not None:
            job.log.info(
                "C benchmark built with %s (%s) at %s",
                " ".join(bench.compiler),
                bench.version,
                ", ".join(levels),
            )
            job.record.metrics["c_compiler"] = (
                f"{' '.join(bench.compiler)} ({bench.version})"
            )
        rows, metrics = speed_rows(
            cfg["shape"],
            cfg["shares"],
            cfg["batches"],
            {k: cfg[k] for k in ("repeats", "iterations", "warmup")},
            seed,
            mismatched_models=cfg["speed_mismatched_models"],
            bench=bench,
            log=job.log.info,
        )
    with atomic_path(sm.output.csv) as tmp:
        pd.DataFrame(rows).reindex(columns=SPEED_COLUMNS).to_csv(
            tmp, index=False, float_format="%.6g"
        )
    job.record.metrics.update(metrics, rows=len(rows))
