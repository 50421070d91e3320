"""rbd_table_distributed: accuracy, scalars communicated per step (against D for a
gradient all-reduce) and the identical-copies check for W in-process workers."""

import json

from weightspace.pipeline.job import script_job
from weightspace.plotting.tables import render_table
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.rbd.summaries import distributed, distributed_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    runs = [run for path in sm.input for run in json.load(open(path))["runs"]]
    summary = distributed(runs)
    cfg = job.config["rbd.table_distributed"]
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.4g")
    html, tex = render_table(
        summary,
        f"RBD with W workers that share seeds ({cfg['network'].upper()} on "
        f"{cfg['dataset']}, d = {cfg['d']} per worker, {cfg['epochs']} epochs, "
        f"{cfg['seeds']} seeds): validation accuracy (%), scalars per step against a "
        "gradient all-reduce, identical copies",
    )
    with atomic_path(sm.output.html) as tmp:
        open(tmp, "w").write(html)
    with atomic_path(sm.output.tex) as tmp:
        open(tmp, "w").write(tex)
    atomic_write_json(sm.output.claims, distributed_claims(summary, cfg["d"]))
