"""structured_table_finetune: test top-1 and loss before/after fine-tuning per feature
set and method."""

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import (
    atomic_write_json,
    atomic_write_text,
    read_json,
)
from weightspace.structured.summaries.common import render_table
from weightspace.structured.summaries.table_finetune import (
    finetune_table,
    finetune_table_caption,
    finetune_table_claims,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    table = finetune_table(read_json(p) for p in sm.input)
    atomic_write_text(sm.output.csv, table.to_csv(index=False, float_format="%.6g"))
    cfg = job.config
    caption = finetune_table_caption(cfg["scale"], cfg["structured.finetune_table"])
    html, tex = render_table(table, caption)
    atomic_write_text(sm.output.html, html)
    atomic_write_text(sm.output.tex, tex)
    dense = table.groupby("features")["dense_test_acc"].first().to_dict()
    atomic_write_json(sm.output.claims, finetune_table_claims(table, dense))
