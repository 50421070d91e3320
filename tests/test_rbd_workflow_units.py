"""The random-bases workflow pieces without Snakemake: runs, jobs and their config
slices, the config checks, the data sets from standard on-disk layouts, and the tables
and figures' summaries with their claims (holding and failing)."""

import copy
from pathlib import Path

import pytest
import torch

from data_fixtures import make_cifar10_root, make_idx_root
from weightspace.pipeline.config import resolve_config
from weightspace.rbd import summaries
from weightspace.rbd.config import check
from weightspace.rbd.datasets import batch_stream, evaluation_view, load_arrays
from weightspace.rbd.jobs import experiment_jobs, experiment_runs, job_config
from weightspace.rbd.presets import learning_rate
from weightspace.rbd.table1 import claims, table

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def _config(scale):
    return resolve_config([str(CONFIG_DIR / f"{scale}.yaml")], {}, str(CONFIG_DIR))


@pytest.mark.parametrize("scale", ["quick", "paper", "tiny"])
def test_shipped_configs_pass(scale):
    assert check(_config(scale)) == []


@pytest.mark.parametrize(
    "experiment, paper_runs",
    [
        ("table1", 3 * 2 * 4 * 3),  # data sets x networks x methods x seeds
        ("fig_dimensions", 2 * 10),  # methods x dimensions, one seed
        ("fig_compartments", 2 * 4 * 3),  # networks x settings x seeds
        ("table_distributed", 3 * 3),  # workers x seeds
    ],
)
def test_paper_is_one_run_per_job_and_quick_groups_runs(experiment, paper_runs):
    paper = _config("paper")
    assert len(experiment_runs(paper, experiment)) == paper_runs
    assert len(experiment_jobs(paper, experiment)) == paper_runs
    quick = _config("quick")
    runs, jobs = experiment_runs(quick, experiment), experiment_jobs(quick, experiment)
    per = quick["rbd"][experiment]["runs_per_job"]
    assert len(jobs) == -(-len(runs) // per) < len(runs)
    assert sum(len(job_config(quick, experiment, j)["runs"]) for j in jobs) == len(runs)


def test_runs_carry_their_setting():
    quick = _config("quick")
    runs = experiment_runs(quick, "fig_compartments")
    split = next(r for r in runs if r["compartments"] == "per_layer_split")
    assert split["weights_per_compartment"] == -1 and split["split_dimensions"]
    workers = [r["workers"] for r in experiment_runs(quick, "table_distributed")]
    assert workers == quick["rbd"]["table_distributed"]["workers"]
    sgd = next(r for r in experiment_runs(quick, "table1") if r["method"] == "sgd")
    assert sgd["d"] is None  # SGD draws no directions
    with pytest.raises(ValueError, match="has no job"):
        job_config(quick, "table1", "chunk99")


def test_a_job_reads_only_what_its_runs_use():
    config = _config("quick")
    job = job_config(config, "table1", "chunk0")  # FC: SGD and RBD
    assert {r["method"] for r in job["runs"]} == {"sgd", "rbd"}
    changed = copy.deepcopy(config)
    changed["rbd"]["table1"]["nes"]["updates"] = 5
    changed["rbd"]["fig_dimensions"]["dims"] = [7]
    assert job_config(changed, "table1", "chunk0") == job
    assert "nes" in job_config(changed, "table1", "chunk1")
    assert "data" not in job  # the MNIST subset needs no data root


def test_learning_rate_presets():
    assert learning_rate("fc", "mnist_subset", "rbd") == 1.0
    assert learning_rate("fc", "mnist", "sgd") == 0.125
    assert learning_rate("cnn", "cifar10", "nes") == 0.125


def test_config_problems_are_named():
    config = _config("quick")
    config["rbd"]["table1"]["runs_per_job"] = 50
    config["device"] = "cuda"
    config["rbd"]["fig_compartments"]["settings"][1]["name"] = "single"
    config["rbd"]["fig_compartments"]["settings"][2]["weights_per_compartment"] = -1.5
    problems = "\n".join(check(config))
    assert "rbd.table1.runs_per_job (50) exceeds its 16 runs" in problems
    assert "set rbd.generator to 'torch' for GPU runs" in problems
    assert "names must be unique" in problems
    assert "negative integer -m, got -1.5" in problems


def test_torchvision_layouts_give_a_seeded_validation_block(tmp_path):
    make_idx_root(tmp_path, "MNIST")  # 5 training, 3 test images
    data = {"root": str(tmp_path), "verify_checksums": True}
    arrays = load_arrays("mnist", data=data, seed=3)
    # a validation block of the test-set size cut from the training images
    assert len(arrays.train[1]) == 2 and len(arrays.validation[1]) == 3
    assert arrays.train[0].shape[1:] == (1, 28, 28) and arrays.train[0].max() <= 1
    assert (
        arrays.validation_offset
        == load_arrays("mnist", data=data, seed=3).validation_offset
    )
    make_cifar10_root(tmp_path, per_batch=10)
    cifar = load_arrays("cifar10", data={**data, "verify_checksums": False}, seed=0)
    assert cifar.cifar and cifar.train[0].shape[1:] == (3, 32, 32)
    x, _ = next(batch_stream(cifar, 8, True, torch.Generator().manual_seed(0)))
    assert x.shape == (8, 3, 32, 32)
    torch.testing.assert_close(x.flatten(1).mean(1), torch.zeros(8), atol=1e-5, rtol=0)
    xv, _ = evaluation_view(cifar, cifar.validation)
    torch.testing.assert_close(
        xv.flatten(1).mean(1), torch.zeros(10), atol=1e-5, rtol=0
    )


def _run(method, acc, seed=0):
    return {
        "dataset": "mnist_subset",
        "network": "fc",
        "method": method,
        "seed_index": seed,
        "status": "completed",
        "history": [{"val_acc": 0.1}, {"val_acc": acc}],
        "updates": 10,
        "images": 320,
        "parameters": 101_770,
    }


def test_table_and_claims():
    runs = [
        _run(m, a, s)
        for m, a in (("sgd", 0.9), ("rbd", 0.7), ("fpd", 0.5), ("nes", 0.2))
        for s in (0, 1)
    ]
    summary = table(runs)
    assert list(summary["method"]) == ["nes", "fpd", "rbd", "sgd"]
    rbd = summary[summary["method"] == "rbd"].iloc[0]
    assert rbd["val_acc_mean"] == pytest.approx(70) and rbd[
        "ratio_to_sgd"
    ] == pytest.approx(70 / 90)
    assert rbd["published_mean"] == 93.893
    assert claims(summary)[0]["holds"]
    runs[2]["history"][-1]["val_acc"] = runs[3]["history"][-1]["val_acc"] = 0.4
    assert not claims(table(runs))[0]["holds"]


def _figure_run(method="rbd", acc=0.5, d=250, seed=0, **extra):
    cos = summaries.reference_cosine(d, 101_770)
    run = {
        "dataset": "mnist_subset",
        "network": "fc",
        "method": method,
        "d": d,
        "compartments": "single",
        "workers": 1,
        "seed_index": seed,
        "status": "completed",
        "parameters": 101_770,
        "compartment_parts": [{"size": 101_770, "d": d}],
        "scalars_per_step": d,
        "updates": 125,
        "images": 4000,
        "history": [
            {"epoch": 0, "val_acc": 0.1},
            {
                "epoch": 1,
                "val_acc": acc,
                "cosine_mean": cos,
                "cosine_min": cos / 2,
                "cosine_max": 2 * cos,
                "variable_cosine_mean": [cos, cos],
            },
        ],
    }
    run.update(extra)
    return run


def test_dimension_claims_hold_and_fail():
    runs = [
        _figure_run(m, acc, d)
        for m, base in (("rbd", 0.3), ("fpd", 0.2))
        for d, acc in ((10, base), (250, base + 0.2))
    ]
    summary = summaries.dimensions(runs)
    assert [c["holds"] for c in summaries.dimensions_claims(summary)] == [True] * 3
    runs[1]["history"][-1]["val_acc"] = 0.1  # RBD at d=250 below d=10 and FPD
    runs[0]["history"][-1]["cosine_mean"] *= 1.2  # 20 % off sqrt(d/D)
    held = [c["holds"] for c in summaries.dimensions_claims(summaries.dimensions(runs))]
    assert held == [False, False, False]


def test_compartment_claims_compare_settings():
    runs = [
        _figure_run(
            acc=acc,
            compartments=name,
            scalars_per_step=s,
            compartment_parts=[{"size": 1, "d": 1}] * k,
        )
        for name, acc, s, k in (
            ("single", 0.4, 250, 1),
            ("per_layer", 0.5, 500, 2),
            ("per_layer_split", 0.3, 252, 2),
        )
    ]
    summary = summaries.compartments(runs)
    assert list(summary["n_compartments"]) == [1, 2, 2]
    assert [c["holds"] for c in summaries.compartments_claims(summary)] == [True]
    runs[1]["history"][-1]["val_acc"] = 0.35
    changed = summaries.compartments(runs)
    assert [c["holds"] for c in summaries.compartments_claims(changed)] == [False]


def test_correlation_claim_checks_rbd_against_sqrt_d_over_D():
    runs = [_figure_run("rbd"), _figure_run("fpd"), _figure_run("sgd")]
    summary = summaries.correlation(runs)
    assert set(summary["method"]) == {"rbd", "fpd"}
    assert summaries.correlation_claims(summary)[0]["holds"]
    runs[0]["history"][-1]["cosine_mean"] *= 0.5
    assert not summaries.correlation_claims(summaries.correlation(runs))[0]["holds"]


def test_distributed_claims_need_identical_copies_and_w_times_d_scalars():
    runs = [_figure_run(workers=w, scalars_per_step=w * 250) for w in (1, 2, 4)]
    runs[2]["history"][-1]["copies_identical"] = True
    summary = summaries.distributed(runs)
    assert list(summary["scalars_vs_allreduce"]) == pytest.approx(
        [w * 250 / 101_770 for w in (1, 2, 4)]
    )
    assert [c["holds"] for c in summaries.distributed_claims(summary, 250)] == [
        True
    ] * 2
    runs[2]["history"][-1]["copies_identical"] = False
    runs[1]["scalars_per_step"] = 999
    summary = summaries.distributed(runs)
    assert [c["holds"] for c in summaries.distributed_claims(summary, 250)] == [
        False
    ] * 2
