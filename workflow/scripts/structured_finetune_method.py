"""structured_table_finetune, one (feature set, method): layer from the share's
approximation plus the original bias, test accuracy and loss before and after halving-lr
SGD fine-tuning (survey protocol)."""

import numpy as np

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json
from weightspace.structured.approximators import approximate
from weightspace.structured.features import FeatureSet
from weightspace.structured.finetuning import (
    finetune_decreasing_lr,
    layer_from_approximation,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg, spec = job.config["finetune_table"], job.config["method"]
    fs = FeatureSet.from_arrays(np.load(sm.input.features))
    approx = approximate(
        fs.weight,
        cfg["share"],
        spec,
        psm_iterations=job.config["structured.psm_iterations"],
        sss_esann_off_by_one=job.config["structured.sss_esann_off_by_one"],
        sss_exact_count=job.config["structured.sss_exact_count"],
    )
    layer = layer_from_approximation(approx, fs.bias)
    seed = derive_seed(
        job.config["seed"],
        "structured_finetune_table",
        sm.wildcards.features,
        spec["name"],
    )
    job.record.seeds["finetune"] = seed
    keys = ("lr", "halvings", "batch_size", "patience", "min_improvement", "split_seed")
    protocol = {k: cfg[k] for k in (*keys, "max_epochs_per_stage", "val_on_train")}
    data = (fs.x_train, fs.y_train, fs.x_test, fs.y_test)
    res = finetune_decreasing_lr(layer, fs.head(), data, seed=seed, **protocol)
    res.update(
        features=sm.wildcards.features,
        method=spec["name"],
        share=cfg["share"],
        n_params=int(approx.n_params),
        rel_error=approx.relative_error(fs.weight),
        dense_test_acc=fs.accuracy("test"),
        budget=int(cfg["share"] * fs.weight.size),
    )
    atomic_write_json(sm.output.json, res)
    job.log.info(
        "%s on %s: test acc %.4f -> %.4f (%d epochs)",
        spec["name"],
        sm.wildcards.features,
        res["test_acc_before"],
        res["test_acc_after"],
        res["epochs"],
    )
    job.record.metrics.update(
        {k: res[k] for k in ("test_acc_before", "test_acc_after", "n_params", "epochs")}
    )
