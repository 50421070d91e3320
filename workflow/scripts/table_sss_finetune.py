"""sss_table_finetune: test top-1 and loss before/after fine-tuning per feature set and method."""


import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path, atomic_write_json, atomic_write_text, read_json
from weightspace.structured.summaries import finetune_table_claims, render_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cols = ["features", "method", "share", "n_params", "budget", "rel_error", "test_acc_before", "test_loss_before",
            "test_acc_after", "test_loss_after", "epochs", "dense_test_acc"]
    table = pd.DataFrame([{k: read_json(p)[k] for k in cols} for p in sm.input])
    with atomic_path(sm.output.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    cfg = sm.config["structured"]["finetune_table"]
    caption = (f"sss_table_finetune ({sm.config['scale']}): structured last layers at share {cfg['share']:g}, "
               f"test top-1 and loss before and after halving-lr SGD fine-tuning.")
    html, tex = render_table(table, caption)
    atomic_write_text(sm.output.html, html)
    atomic_write_text(sm.output.tex, tex)
    dense = table.groupby("features")["dense_test_acc"].first().to_dict()
    atomic_write_json(sm.output.claims, finetune_table_claims(table, dense))
