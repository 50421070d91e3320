"""structured_fig_finetune, one share: SSS layer from the approximation of W, test
accuracy before and after fine-tuning (ESANN protocol), for every iteration (seeds
derived from (share, iteration))."""

import numpy as np

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json
from weightspace.structured.features import FeatureSet
from weightspace.structured.finetuning import finetune_esann
from weightspace.structured.layers.sss import SSSLayer
from weightspace.structured.sss import approximate_sss

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["structured.finetune"]
    share = float(sm.wildcards.share)
    fs = FeatureSet.from_arrays(np.load(sm.input.features))
    approx = approximate_sss(
        fs.weight,
        share,
        cfg["n_stages"],
        esann_off_by_one=job.config["structured.sss_esann_off_by_one"],
        exact_count=job.config["structured.sss_exact_count"],
    )
    keys = ("lr", "batch_size", "patience", "max_epochs", "split_seed", "val_on_train")
    protocol = {k: cfg[k] for k in (*keys, "double_softmax")}
    data = (fs.x_train, fs.y_train, fs.x_test, fs.y_test)
    runs = []
    for iteration in range(cfg["iterations"]):
        seed = derive_seed(
            job.config["seed"], "structured_finetune", sm.wildcards.share, iteration
        )
        job.record.seeds[f"iteration{iteration}"] = seed
        layer = SSSLayer.from_approximation(approx, bias=fs.bias.astype(np.float64))
        res = finetune_esann(layer, fs.head(), data, seed=seed, **protocol)
        res.update(
            share=share,
            iteration=iteration,
            state_dim=int(approx.info["state_dim"]),
            n_params=int(approx.n_params),
            seed=seed,
        )
        runs.append(res)
        job.log.info(
            "share %g iteration %d: test acc %.4f -> %.4f in %d epochs",
            share,
            iteration,
            res["test_acc_before"],
            res["test_acc_after"],
            res["epochs"],
        )
    atomic_write_json(sm.output.json, {"share": share, "runs": runs})
    job.record.metrics.update(
        after=[r["test_acc_after"] for r in runs], before=runs[0]["test_acc_before"]
    )
