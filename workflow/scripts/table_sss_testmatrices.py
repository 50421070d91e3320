"""sss_table_testmatrices: relative Frobenius error and parameters per family, share and approximator."""

import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path, atomic_write_json, atomic_write_text
from weightspace.structured.summaries import render_table, matrix_benchmark_claims, matrix_benchmark_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    rows = pd.concat([pd.read_csv(p) for p in sm.input], ignore_index=True)
    table = matrix_benchmark_table(rows)
    with atomic_path(sm.output.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    wide = table.pivot_table(index=["family", "share"], columns="approximator", values="rel_error",
                             sort=False).reset_index()
    cfg = sm.config["structured"]["testmatrices"]
    caption = (f"sss_table_testmatrices ({sm.config['scale']}): relative Frobenius error of each approximator on "
               f"{cfg['size']}x{cfg['size']} test matrices (mean over matrices), per share; parameter counts in the CSV.")
    html, tex = render_table(wide, caption)
    atomic_write_text(sm.output.html, html)
    atomic_write_text(sm.output.tex, tex)
    atomic_write_json(sm.output.claims, matrix_benchmark_claims(table))
