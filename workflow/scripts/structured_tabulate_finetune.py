"""structured_table_finetune: test top-1 and loss before/after fine-tuning per feature
set and method."""

from weightspace.pipeline.chunks import check_chunks
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
    cfg = job.config
    settings = cfg["structured.finetune_table"]
    documents = [read_json(p) for p in sm.input]
    check_chunks(
        [(doc["method"], doc["features"]) for doc in documents],
        [(m["name"], f) for f in settings["features"] for m in settings["methods"]],
        "structured_tabulate_finetune (method, feature set) results",
    )
    table = finetune_table(documents)
    atomic_write_text(sm.output.csv, table.to_csv(index=False, float_format="%.6g"))
    caption = finetune_table_caption(cfg["scale"], cfg["structured.finetune_table"])
    html, tex = render_table(table, caption)
    atomic_write_text(sm.output.html, html)
    atomic_write_text(sm.output.tex, tex)
    dense = table.groupby("features")["dense_test_acc"].first().to_dict()
    atomic_write_json(sm.output.claims, finetune_table_claims(table, dense))
