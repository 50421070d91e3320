"""rbd_table1: our validation accuracy next to the published Table 1."""

from weightspace.pipeline.chunks import check_chunks, read_runs
from weightspace.pipeline.job import script_job
from weightspace.plotting.tables import render_table
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.rbd.table1 import claims, table

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    runs = read_runs(sm.input)
    t = job.config["rbd.table1"]
    check_chunks(
        [(r["dataset"], r["network"], r["method"], r["seed_index"]) for r in runs],
        [
            (d, n, m, s)
            for d in t["datasets"]
            for n in t["networks"]
            for m in t["methods"]
            for s in range(t["seeds"])
        ],
        "rbd_tabulate_table1 runs",
    )
    summary = table(runs)
    with atomic_path(sm.output.csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.4g")
    html, tex = render_table(
        summary,
        f"Validation accuracy (%) of NES, FPD, RBD and SGD, d = {t['d']}, "
        f"{t['epochs']} epochs, {t['seeds']} seeds; published Table 1 beside",
    )
    with atomic_path(sm.output.html) as tmp:
        open(tmp, "w").write(html)
    with atomic_path(sm.output.tex) as tmp:
        open(tmp, "w").write(tex)
    atomic_write_json(sm.output.claims, claims(summary))
