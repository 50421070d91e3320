"""structured_table_testmatrices, one family: every approximator at every share on the
family's test matrices."""

import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.structured.approximators import matrix_benchmark_rows
from weightspace.structured.test_matrices import LDR_KINDS, family_matrix

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["structured.testmatrices"]
    family = sm.wildcards.family
    count = (
        max(cfg["matrices_per_family"], len(LDR_KINDS))
        if family == "ldr"
        else cfg["matrices_per_family"]
    )
    matrices = []
    for index in range(count):
        mat = family_matrix(
            family,
            cfg["size"],
            index,
            job.config["seed"],
            rank=cfg["low_rank"],
            stage_size=cfg["sss_stage_size"],
            state_dim=cfg["sss_state_dim"],
            hankel_as_transpose=cfg["hankel_as_transpose"],
        ).astype("float32")
        sub = f"ldr_{LDR_KINDS[index % len(LDR_KINDS)]}" if family == "ldr" else family
        matrices.append((sub, mat))
    approximators = [a for a in cfg["approximators"]]
    rows = matrix_benchmark_rows(
        matrices,
        cfg["shares"],
        approximators,
        psm_iterations=job.config["structured.psm_iterations"],
        sss_esann_off_by_one=job.config["structured.sss_esann_off_by_one"],
        sss_exact_count=job.config["structured.sss_exact_count"],
    )
    df = pd.DataFrame(rows).rename(columns={"matrix": "family"})
    df.insert(
        1,
        "index",
        [
            i
            for i, _ in enumerate(matrices)
            for _ in range(len(cfg["shares"]) * len(approximators))
        ],
    )
    with atomic_path(sm.output.csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    job.record.metrics.update(
        matrices=len(matrices), rows=len(df), seconds=float(df["seconds"].sum())
    )
    for row in df.itertuples():
        job.log.info(
            "%s #%d share %g %s: rel. error %.3g, %d params",
            row.family,
            row.index,
            row.share,
            row.approximator,
            row.rel_error,
            row.n_params,
        )
