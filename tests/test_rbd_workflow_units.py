"""The rbd_table1 pieces without Snakemake: jobs and their config slices, the config
checks, the data sets from standard on-disk layouts, and the table with its claims."""

import copy
from pathlib import Path

import pytest
import torch

from data_fixtures import make_cifar10_root, make_idx_root
from weightspace.pipeline.config import resolve_config
from weightspace.rbd.config import check
from weightspace.rbd.datasets import batch_stream, evaluation_view, load_arrays
from weightspace.rbd.jobs import table1_job_config, table1_jobs
from weightspace.rbd.presets import learning_rate
from weightspace.rbd.table1 import claims, table

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def _config(scale):
    return resolve_config([str(CONFIG_DIR / f"{scale}.yaml")], {}, str(CONFIG_DIR))


@pytest.mark.parametrize("scale", ["quick", "paper", "tiny"])
def test_shipped_configs_pass(scale):
    assert check(_config(scale)) == []


def test_paper_table1_is_one_run_per_job_and_quick_groups_seeds():
    paper = table1_jobs(_config("paper"))
    assert len(paper) == 3 * 2 * 4 * 3  # data sets x networks x methods x seeds
    quick = _config("quick")
    jobs = table1_jobs(quick)
    assert len(jobs) == 2 * 4
    assert table1_job_config(quick, *jobs[0])["seeds"] == [0, 1]


def test_a_job_reads_only_what_its_method_uses():
    config = _config("quick")
    sgd = table1_job_config(config, "mnist_subset", "fc", "sgd", 0)
    changed = copy.deepcopy(config)
    changed["rbd"]["table1"]["d"] = 100
    changed["rbd"]["table1"]["nes"]["updates"] = 5
    assert table1_job_config(changed, "mnist_subset", "fc", "sgd", 0) == sgd
    assert table1_job_config(changed, "mnist_subset", "fc", "rbd", 0)["d"] == 100


def test_learning_rate_presets():
    assert learning_rate("fc", "mnist_subset", "rbd") == 1.0
    assert learning_rate("fc", "mnist", "sgd") == 0.125
    assert learning_rate("cnn", "cifar10", "nes") == 0.125


def test_too_many_runs_per_job_is_a_problem():
    config = _config("quick")
    config["rbd"]["table1"]["runs_per_job"] = 5
    assert any("runs_per_job (5) exceeds seeds" in p for p in check(config))


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
