"""relu_table_setups: best_test_rmse × 10⁴ ± std/√(P−1) × 10⁴ of the best-validation lr per
(parameterisation, optimiser, bias init) and distribution, cells shaded by the log-RMSE position
within the column, as CSV, HTML and LaTeX."""

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    read_json,
)
from weightspace.relu import setups_summary as summary

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["relu.setups"]
    best = summary.best_results(read_json(sm.input.best))
    dists = cfg["distributions"]
    rows = summary.ordered_table(
        best, cfg["parameterisations"], cfg["optimizers"], cfg["bias_inits"], dists
    )
    metric = (
        "best_test_rmse (validation MSE at the best check, the original's defect)"
        if cfg["best_test_uses_valid"]
        else "best_test_rmse (test RMSE at the best-validation check)"
    )
    caption = (
        f"{metric} x 1e4 ± std/sqrt(P-1) x 1e4 of the best-validation lr; width "
        f"{cfg['width']}, P = {cfg['nets']} nets, {cfg['steps']} steps; red: log-RMSE "
        "position between the column's best (white) and worst (red)"
    )
    with atomic_path(sm.output.csv) as tmp:
        summary.table_frame(rows, dists).to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_text(sm.output.html, summary.table_html(rows, dists, caption))
    atomic_write_text(sm.output.tex, summary.table_latex(rows, dists))
    claims = summary.table_claims(rows, dists)
    job.record.metrics.update(
        rows=len(rows), claims_hold=sum(c["holds"] is True for c in claims)
    )
    atomic_write_json(sm.output.claims, claims)
