"""structured_fig_approximation, one approximator: train/validation accuracy with W̃ in
place of W, per share."""

import numpy as np
import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.structured.approximators import LABELS, approximate
from weightspace.structured.features import FeatureSet

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config
    spec = cfg["method"]
    fs = FeatureSet.from_arrays(np.load(sm.input.features))
    rows = []
    for share in cfg["shares"]:
        approx = approximate(
            fs.weight,
            share,
            spec,
            psm_iterations=cfg["structured.psm_iterations"],
            sss_esann_off_by_one=cfg["structured.sss_esann_off_by_one"],
            sss_exact_count=cfg["structured.sss_exact_count"],
        )
        rows.append(
            {
                "method": spec["name"],
                "family": LABELS[spec["method"]],
                "share": share,
                "train_acc": fs.accuracy("train", approx.dense),
                "val_acc": fs.accuracy("test", approx.dense),
                "rel_error": approx.relative_error(fs.weight),
                "n_params": approx.n_params,
                "budget": int(share * fs.weight.size),
                "state_dim": approx.info.get("state_dim", np.nan),
                "rank": approx.info.get("rank", np.nan),
            }
        )
        job.log.info(
            "%s share %g: train %.4f, test %.4f, rel. error %.3f",
            spec["name"],
            share,
            rows[-1]["train_acc"],
            rows[-1]["val_acc"],
            rows[-1]["rel_error"],
        )
    with atomic_path(sm.output.csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")
    job.record.metrics["val_acc"] = [r["val_acc"] for r in rows]
