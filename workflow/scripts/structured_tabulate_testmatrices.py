"""structured_table_testmatrices: relative Frobenius error and parameters per family,
share and approximator."""

import pandas as pd

from weightspace.pipeline.chunks import check_chunks
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json, atomic_write_text
from weightspace.structured.summaries.common import render_table
from weightspace.structured.summaries.table_testmatrices import (
    matrix_benchmark_claims,
    matrix_benchmark_table,
    testmatrices_caption,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    parts = [pd.read_csv(p) for p in sm.input]
    # one file per family group (ldr holds ldr_hankel, ldr_toeplitz, ...): none twice
    check_chunks(
        [family for part in parts for family in dict.fromkeys(part["family"])],
        None,
        "structured_tabulate_testmatrices families",
    )
    rows = pd.concat(parts, ignore_index=True)
    table = matrix_benchmark_table(rows)
    atomic_write_text(sm.output.csv, table.to_csv(index=False, float_format="%.6g"))
    wide = table.pivot_table(
        index=["family", "share"],
        columns="approximator",
        values="rel_error",
        sort=False,
    ).reset_index()
    cfg = job.config
    caption = testmatrices_caption(cfg["scale"], cfg["structured.testmatrices"])
    html, tex = render_table(wide, caption)
    atomic_write_text(sm.output.html, html)
    atomic_write_text(sm.output.tex, tex)
    atomic_write_json(sm.output.claims, matrix_benchmark_claims(table))
