"""structured_fig_finetune: held-out top-1 of the SSS layer before ("only approx") and
after fine-tuning."""

from pathlib import Path

import numpy as np
import pandas as pd

from weightspace.pipeline.chunks import check_chunks
from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json, read_json
from weightspace.structured.features import FeatureSet
from weightspace.structured.jobs import share_label
from weightspace.structured.summaries.fig_finetune import (
    finetune_claims,
    finetune_summary,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    fs = FeatureSet.from_arrays(np.load(sm.input.features))
    shares = [read_json(p) for p in sm.input.json]
    check_chunks(
        [share_label(doc["share"]) for doc in shares],
        [Path(p).stem.removeprefix("share") for p in sm.input.json],
        "structured_plot_finetune shares",
    )
    runs = pd.DataFrame(
        [
            {k: v for k, v in r.items() if k != "history"}
            for doc in shares
            for r in doc["runs"]
        ]
    )
    summary = finetune_summary(runs).sort_values("share")
    dense = fs.accuracy("test")
    fig, ax = new_figure(width=5.4, height=3.8)
    styles = {
        "before": {"marker": "s", "color": "C1", "ls": "--"},
        "after": {"marker": "o", "color": "C0"},
    }
    labels = {
        "before": "only approx (SSS, no training)",
        "after": "SSS after fine-tuning",
    }
    for when, style in styles.items():
        mean, std = summary[f"{when}_mean"], summary[f"{when}_std"]
        kw = {"ms": 3, "capsize": 2, "label": labels[when], **style}
        ax.errorbar(summary["share"], mean, yerr=std, **kw)
    ax.axhline(dense, color="k", ls=":", lw=1, label=f"dense {dense:.3f}")
    ax.set_xlabel("parameter share s")
    ax.set_ylabel("held-out top-1 accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        summary.assign(dense=dense).to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(sm.output.claims, finetune_claims(summary, dense))
