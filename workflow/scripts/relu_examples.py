"""The numbers of relu_fig_examples: (a) ex-distr setups retrained on one shared data set with
their best grid lr, median net by final validation RMSE; (b) one m = 16 net trained by GD on
the six points; (c) the Adam reference net with equidistant kinks and a GD net from zero biases."""

import dataclasses

import numpy as np
import torch

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_write_json, read_json
from weightspace.relu import examples
from weightspace.relu.distributions import ex_target
from weightspace.relu.setups import best_by_setting, make_data, predict, run_setup_grid
from weightspace.relu.setups_summary import load_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg, setups = job.config["examples"], job.config["setups"]
    best = best_by_setting(load_job(read_json(sm.input.setups)))
    seeds = {
        name: derive_seed(job.config["seed"], "relu_examples", name)
        for name in ("shared-dataset", "trace", "reference")
    }
    job.record.seeds.update(seeds)

    grid = np.linspace(-1.4, 1.4, 561)
    in_data = np.abs(grid) <= 1.0 / np.sqrt(105 / 196)  # the support of ex-distr
    chosen = {}
    for setting in cfg["configs"]:
        key = (
            setting["parameterisation"],
            setting["optimizer"],
            setting["bias_init"],
            "ex-distr",
        )
        if key in best:
            chosen[key] = best[key].config.lr
        else:
            job.log.warning("%s: every grid lr diverged, nothing to retrain", key)
            job.record.notes.append(f"{key}: no finite grid result, left out")
    trained = {}
    # Configurations of one (parameterisation, optimiser) train together as one batched model.
    for param, opt in dict.fromkeys(k[:2] for k in chosen):
        keys = [k for k in chosen if k[:2] == (param, opt)]
        base = dataclasses.replace(
            best[keys[0]].config, n_nets=cfg["nets"], steps=cfg["steps"]
        )
        job.log.info(
            "%s/%s: retraining %s with lrs %s, %d nets for %d steps",
            param,
            opt,
            [k[2] for k in keys],
            [round(chosen[k], 6) for k in keys],
            cfg["nets"],
            cfg["steps"],
        )
        results = run_setup_grid(
            base,
            [(k[2], chosen[k]) for k in keys],
            seeds["shared-dataset"],
            shared_dataset=True,
            keep_model=True,
        )
        trained.update(zip(keys, results))
    nets = []
    for key in chosen:  # in the config's order
        res = trained[key]
        setting = dict(zip(("parameterisation", "optimizer", "bias_init"), key[:3]))
        if not res.ok:
            job.record.notes.append(
                f"{key}: retraining diverged at step {res.aborted_at_step}"
            )
            continue
        i = examples.median_index(res.last_valid_rmse)
        f = predict(res.model, torch.as_tensor(grid).view(-1, 1))[i].double().numpy()
        nets.append(
            {
                "setting": setting,
                "lr": res.config.lr,
                "median_net": i,
                "valid_rmse": float(res.last_valid_rmse[i]),
                "test_rmse": float(res.last_test_rmse[i]),
                "valid_rmse_all": res.last_valid_rmse.tolist(),
                "nonlinearity": examples.per_side_nonlinearity(
                    grid[in_data], f[in_data]
                ),
                "f": f.tolist(),
            }
        )
        job.log.info(
            "%s median net %d: valid RMSE %.4f, per-side nonlinearity %.4f",
            key[:3],
            i,
            nets[-1]["valid_rmse"],
            nets[-1]["nonlinearity"],
        )
    data = make_data(
        "ex-distr",
        1,
        setups["train_per_dim"],
        setups["n_valid"],
        setups["n_test"],
        seeds["shared-dataset"],
        shared_dataset=True,
    )
    retrained = {
        "grid": grid.tolist(),
        "target": ex_target(grid).tolist(),
        "nets": nets,
        "steps": cfg["steps"],
        "n_nets": cfg["nets"],
        "data_x": (
            data.x_train[0, :, 0] * data.x_std[0, 0, 0] + data.x_mean[0, 0, 0]
        ).tolist(),
        "data_y": (data.y_train[0] * data.y_std[0, 0] + data.y_mean[0, 0]).tolist(),
    }

    t = cfg["trace"]
    trace = examples.six_point_trace(
        t["width"],
        t["lr"],
        t["epochs"],
        t["snapshot_every"],
        seeds["trace"],
        progress=lambda i: job.log.info(
            "trace epoch %d: loss %.8f", i["step"], i["loss"]
        ),
    )
    r = cfg["reference"]
    reference = examples.reference_pair(
        r["width"],
        r["samples"],
        r["lr"],
        r["steps"],
        r["snapshot_every"],
        seeds["reference"],
        grid=grid,
        progress=lambda i: job.log.info(
            "reference step %d: loss %.6f", i["step"], i["loss"]
        ),
    )
    trace["snapshots"] = {str(k): v for k, v in trace["snapshots"].items()}
    trace["lr"] = t["lr"]
    doc = {"retrained": retrained, "trace": trace, "reference": reference}
    atomic_write_json(sm.output.result, doc)
    job.record.metrics.update(
        trace_final_excess_loss=float(trace["loss"][-1] - trace["linear_loss"]),
        reference_losses={
            "linear": reference["linear_loss"],
            "gd_zero_bias": float(reference["gd_zero_bias"]["loss"][-1]),
            "adam_equidistant": float(reference["adam_equidistant"]["loss"][-1]),
        },
        retrained={str(n["setting"]): n["valid_rmse"] for n in nets},
    )
