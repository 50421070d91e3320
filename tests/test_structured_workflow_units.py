"""Units behind the structured-layer targets: the feature check on the quick SmallCNN, approximator specs,
fine-tuning helpers, timing and the claims tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from weightspace.models import small_cnn
from weightspace.structured.approximators import approximate, matrix_benchmark_rows
from weightspace.structured.features import (
    FeatureSet,
    check_layer_output,
    check_predictions,
    check_pretrained_inputs,
    cnn_features,
    split_small_cnn,
)
from weightspace.structured.finetuning import (
    finetune_decreasing_lr,
    finetune_esann,
    inner_split,
    layer_from_approximation,
)
from weightspace.structured.speed import time_forward
from weightspace.structured.summaries.common import render_table
from weightspace.structured.summaries.fig_finetune import finetune_claims
from weightspace.structured.summaries.table_testmatrices import (
    matrix_benchmark_claims,
    matrix_benchmark_table,
)
from weightspace.structured.test_matrices import FAMILIES

ROOT = Path(__file__).resolve().parents[1]


def _feature_set(seed=0, n=200):
    torch.manual_seed(seed)
    model = small_cnn().eval()
    images = torch.rand(n, 1, 28, 28).numpy()
    out = cnn_features(model, images, batch_size=64)
    labels = out["pred"].copy()
    return (
        model,
        out,
        FeatureSet(
            x_train=out["features"],
            y_train=labels,
            x_test=out["features"][:50],
            y_test=labels[:50],
            weight=model.fc1.weight.detach().numpy(),
            bias=model.fc1.bias.detach().numpy(),
            head_weight=model.fc2.weight.detach().numpy(),
            head_bias=model.fc2.bias.detach().numpy(),
            pred_train=out["pred"],
            pred_test=out["pred"][:50],
        ),
    )


def test_features_times_fc1_reproduce_the_network():
    model, out, fs = _feature_set()
    assert fs.x_train.shape == (200, 1024) and fs.weight.shape == (256, 1024)
    # features·Wᵀ + b equals fc1's output ...
    assert check_layer_output(out["features"], fs.weight, fs.bias, out["fc_out"]) < 1e-4
    # ... and through the frozen head the full network's logits and predictions
    body, fc1, head = split_small_cnn(model)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        full = model(x).numpy()
        u = body(x).numpy()
    assert np.allclose(fs.logits(u, fs.weight), full, atol=1e-4)
    assert check_predictions(fs)["train_mismatch"] == 0.0
    assert fs.accuracy("train") == 1.0


def test_feature_check_catches_a_wrong_layer():
    _, out, fs = _feature_set()
    with pytest.raises(ValueError, match="feature check failed"):
        check_layer_output(out["features"], fs.weight[::-1], fs.bias, out["fc_out"])
    wrong = FeatureSet(**{**fs.arrays(), "pred_train": (fs.pred_train + 1) % 10})
    with pytest.raises(ValueError, match="label order"):
        check_predictions(wrong)


def test_feature_set_round_trip(tmp_path):
    _, _, fs = _feature_set(n=20)
    np.savez(tmp_path / "f.npz", **fs.arrays())
    back = FeatureSet.from_arrays(np.load(tmp_path / "f.npz"))
    assert all(np.array_equal(getattr(back, k), v) for k, v in fs.arrays().items())
    with pytest.raises(ValueError, match="lacks the arrays"):
        FeatureSet.from_arrays({"x_train": fs.x_train})


def test_missing_paper_inputs_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenet_root is null"):
        check_pretrained_inputs("resnet18", "IMAGENET1K_V1", None, tmp_path / "c.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_pretrained_inputs(
            "resnet18", "IMAGENET1K_V1", tmp_path / "nope", tmp_path / "c.txt"
        )
    with pytest.raises(FileNotFoundError, match="class list"):
        check_pretrained_inputs(
            "resnet18", "IMAGENET1K_V1", tmp_path, tmp_path / "c.txt"
        )


@pytest.mark.parametrize(
    "spec",
    [
        {"method": "lr"},
        {"method": "sss", "n_stages": 4},
        {"method": "sss_search", "n_steps": 2},
        {"method": "hmat_search"},
        {"method": "tl"},
    ],
)
def test_approximators_fit_their_budget(spec):
    mat = np.random.default_rng(0).uniform(-1, 1, (20, 20))
    for share in (0.2, 0.5):
        approx = approximate(mat, share, spec)
        assert approx.n_params <= int(share * mat.size)
        assert approx.dense.shape == mat.shape


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown approximation method"):
        approximate(np.eye(4), 0.5, {"method": "magic"})


def test_matrix_benchmark_table_and_claims():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(20, 3)), rng.normal(size=(3, 20))
    mats = [("low_rank", u @ v), ("random", rng.uniform(-1, 1, (20, 20)))]
    rows = pd.DataFrame(
        matrix_benchmark_rows(
            mats,
            [0.3, 0.5],
            [
                {"name": "LR", "method": "lr"},
                {"name": "SSS", "method": "sss_search", "n_steps": 2},
            ],
        )
    )
    table = matrix_benchmark_table(rows.rename(columns={"matrix": "family"}))
    claims = {c["claim"]: c for c in matrix_benchmark_claims(table)}
    assert claims["LR is the best approximator of the low_rank family (share 0.5)"][
        "holds"
    ]
    assert claims["every approximation fits its parameter budget"]["holds"]
    html, tex = render_table(table, "caption_x")
    assert "<table" in html and "caption\\_x" in tex


def test_finetune_claim_leaves_out_shares_without_parameters():
    summary = pd.DataFrame(
        {
            "share": [0.01, 0.05, 0.1, 0.3],
            "before_mean": [0.1, 0.6, 0.85, 0.95],
            "after_mean": [0.1, 0.94, 0.95, 0.96],
            "n_params": [0, 10, 20, 60],
        }
    )
    gain, close = finetune_claims(summary, dense_test=0.954)
    assert gain["holds"] and close["holds"]
    assert "0.01 left out" in close["reproduced"]
    summary.loc[1, "after_mean"] = (
        0.90  # a share with parameters that stays far from dense
    )
    assert not finetune_claims(summary, dense_test=0.954)[1]["holds"]


def test_inner_split_is_a_partition():
    fit, val = inner_split(100, 42)
    assert len(val) == 20 and sorted(np.concatenate([fit, val]).tolist()) == list(
        range(100)
    )
    assert np.array_equal(inner_split(100, 42)[1], val)


def _toy_features():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 12)).astype(np.float32)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    y = (x @ w.T).argmax(1)
    return w, x, y


@pytest.mark.parametrize("kind", ["esann", "decreasing"])
def test_finetuning_recovers_a_crude_approximation(kind):
    w, x, y = _toy_features()
    approx = approximate(w.astype(np.float64), 0.6, {"method": "lr"})
    layer = layer_from_approximation(approx, np.zeros(3))
    if kind == "esann":
        res = finetune_esann(
            layer,
            torch.nn.Identity(),
            (x, y, x[:100], y[:100]),
            seed=0,
            lr=1e-2,
            batch_size=32,
            patience=2,
            max_epochs=15,
        )
    else:
        res = finetune_decreasing_lr(
            layer,
            torch.nn.Identity(),
            (x, y, x[:100], y[:100]),
            seed=0,
            lr=0.5,
            halvings=2,
            batch_size=32,
            max_epochs_per_stage=5,
        )
    assert res["test_acc_after"] >= res["test_acc_before"] - 1e-9
    assert res["epochs"] >= 1


def test_time_forward_returns_one_median_per_iteration():
    times = time_forward(torch.nn.Linear(8, 4), 2, repeats=3, iterations=2, warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)


def test_workflow_family_list_matches_the_library():
    text = (ROOT / "rules" / "structured.smk").read_text()
    block = text.split("STRUCTURED_FAMILIES = ")[1].split("STRUCTURED_SPEED_SHAPES")[0]
    names = re.findall(r'"([a-z_]+)"', block)
    assert tuple(names) == FAMILIES


@pytest.mark.slow
@pytest.mark.parametrize(
    "root, message",
    [(None, "imagenet_root is null"), ("missing-imagenet", "does not exist")],
)
def test_missing_imagenet_stops_the_workflow_before_any_job(tmp_path, root, message):
    import json

    from workflow_utils import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "repo")
    override = tmp_path / "imagenet.yaml"
    imagenet_root = root and str(tmp_path / root)
    override.write_text(
        json.dumps({"extends": "paper", "data": {"imagenet_root": imagenet_root}})
    )
    proc = snakemake(
        work,
        "results/paper/structured/features/resnet18/all.npz",
        "--configfile",
        "config/paper.yaml",
        str(override),
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out and "resnet18/all" in out
    assert not (work / "results").exists()
