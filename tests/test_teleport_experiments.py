"""The teleportation experiments' science code: arms and controls, micro-teleportation,
gradient statistics, weight histograms, the convergence summaries and claims, the data
parts and one training run."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from data_fixtures import make_cifar10_root
from weightspace.models import build_model
from weightspace.teleport.controls import ARMS, Teleport, _teleported_copy, apply_arm
from weightspace.teleport.convergence import (
    boost_claims,
    curves,
    per_lr,
    pseudo_claims,
    runs_table,
    zero_filled,
)
from weightspace.teleport.datasets import batch_list, holdout, load_parts
from weightspace.teleport.gradients import gradient_change
from weightspace.teleport.histograms import (
    init_bound,
    weight_panels,
    weight_statistics,
)
from weightspace.teleport.micro import micro_angles
from weightspace.teleport.model import TeleportableModel
from weightspace.teleport.summaries import random_spread
from weightspace.teleport.training import Protocol, train_run

torch.set_num_threads(1)
X = torch.rand(2, 1, 28, 28)


def _mlp(seed=0, hidden=(32, 32)):
    torch.manual_seed(seed)
    return build_model("mlp", in_channels=1, image_size=28, hidden=hidden)


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# -- arms ---------------------------------------------------------------------------------
def test_teleport_arm_keeps_the_function_and_changes_the_weights():
    model = _mlp()
    x = torch.randn(16, 1, 28, 28)
    before = model(x).detach()
    gen = torch.Generator().manual_seed(1)
    net, stats = apply_arm(copy.deepcopy(model), "teleport", X, Teleport(), gen)
    assert isinstance(net, TeleportableModel)
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-5)
    assert stats["cob_negative_fraction"] > 0.2  # inter_landscape flips signs
    assert not torch.allclose(_flat(net), _flat(model))


def _reference_teleport(model, seed):
    gen = torch.Generator().manual_seed(seed)
    copied, _ = _teleported_copy(model, X, Teleport(), gen)
    return dict(copied.network.named_parameters())


def test_pseudo_matches_the_l1_displacement_of_each_tensor():
    model = _mlp()
    target = _reference_teleport(model, 3)
    moved, _ = apply_arm(
        copy.deepcopy(model), "pseudo", X, Teleport(), torch.Generator().manual_seed(3)
    )
    for name, param in model.named_parameters():
        shift = (dict(moved.named_parameters())[name] - param).detach().abs().sum()
        expected = (target[name] - param).detach().abs().sum()
        assert math.isclose(float(shift), float(expected), rel_tol=1e-4)


def test_norm_matched_takes_the_teleported_norm_of_each_tensor():
    model = _mlp()
    target = _reference_teleport(model, 4)
    moved, _ = apply_arm(
        copy.deepcopy(model),
        "norm_matched",
        X,
        Teleport(),
        torch.Generator().manual_seed(4),
    )
    for name, param in moved.named_parameters():
        assert math.isclose(
            float(param.detach().norm()),
            float(target[name].detach().norm()),
            rel_tol=1e-5,
        )


def test_same_distribution_redraws_linear_weights_only():
    model = _mlp(hidden=(256, 256))
    target = _reference_teleport(model, 5)
    moved, _ = apply_arm(
        copy.deepcopy(model),
        "same_distr",
        X,
        Teleport(),
        torch.Generator().manual_seed(5),
    )
    teleported = torch.cat([p.detach().flatten() for p in target.values()])
    weights = torch.cat(
        [
            m.weight.detach().flatten()
            for m in moved.modules()
            if isinstance(m, nn.Linear)
        ]
    )
    # the resampled weights follow the teleported histogram (std within 5 %)
    assert abs(float(weights.std() / teleported.std()) - 1) < 0.05
    for a, b in zip(moved.modules(), model.modules()):
        if isinstance(a, nn.Linear):
            torch.testing.assert_close(a.bias, b.bias)


def test_every_arm_runs_and_none_changes_nothing():
    model = _mlp()
    for arm in ARMS:
        net, _ = apply_arm(
            copy.deepcopy(model), arm, X, Teleport(), torch.Generator().manual_seed(0)
        )
        same = torch.equal(_flat(net), _flat(model))
        assert same == (arm == "none"), arm
    with pytest.raises(ValueError, match="unknown arm 'bogus'"):
        apply_arm(model, "bogus", X, Teleport(), torch.Generator())


# -- micro-teleportation and gradients ------------------------------------------------------
def test_micro_displacements_are_orthogonal_to_the_gradient():
    net = TeleportableModel(_mlp(), X)
    start = net.get_weights()
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))) for _ in range(30)
    ]
    rows = pd.DataFrame(micro_angles(net, batches, 0.001, gen))
    spread = random_spread(start.numel())
    # (delta, g) is O(eps) = 1e-3 rad ~ 0.06 degrees off 90 at most; random angles spread
    # by (180/pi)/sqrt(d) ~ 0.33 degrees at d = 26,506
    assert abs(rows["delta_grad"].mean() - 90) < 0.05 * spread
    assert rows["delta_grad"].std() < 0.05 * rows["random_random"].std()
    assert abs(rows["random_random"].std() / spread - 1) < 0.5
    torch.testing.assert_close(net.get_weights(), start)


def test_gradient_change_grows_with_the_range_and_restores_the_weights():
    torch.manual_seed(0)
    net = TeleportableModel(_mlp(hidden=(64, 64, 64)), X)
    start = net.get_weights()
    batches = [
        (torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))) for _ in range(3)
    ]
    rows = pd.DataFrame(
        gradient_change(
            net, batches, [0.01, 0.5, 0.9], 4, torch.Generator().manual_seed(1)
        )
    )
    means = rows.groupby("cob_range")["value"].mean()
    ratios = rows.groupby("cob_range")["weight_norm_ratio"].mean()
    assert means.is_monotonic_increasing
    assert abs(ratios[0.01] - 1) < 0.01 and ratios[0.9] > ratios[0.5] > 1
    torch.testing.assert_close(net.get_weights(), start)


# -- weight histograms ----------------------------------------------------------------------
def test_teleported_weights_are_wider_and_heavy_tailed():
    torch.manual_seed(0)
    model = build_model("mlp_5x500", in_channels=3, image_size=32)
    panels = weight_panels(
        model,
        torch.zeros(2, 3, 32, 32),
        0.9,
        0.9,
        1000,
        torch.Generator().manual_seed(0),
    )
    bound = init_bound(model)
    assert math.isclose(bound, 1 / math.sqrt(500))
    init = weight_statistics(panels["init"], bound)
    tele = weight_statistics(panels["teleported"], bound)
    same = weight_statistics(panels["same_distr"], bound)
    assert init["outside_init_bound"] == 0.0
    assert tele["std"] > 1.5 * init["std"]
    # init pools uniforms of two widths (first layer 1/sqrt(3072), the rest 1/sqrt(500))
    assert init["kurtosis"] < 3.5 and tele["kurtosis"] > 5 * init["kurtosis"]
    assert tele["outside_init_bound"] > 0.05
    assert same["std"] > 1.5 * init["std"]  # resampled from the teleported histogram


# -- convergence summaries and claims -------------------------------------------------------
def _run(arm, momentum, seed, accs, status="completed"):
    history = [
        {"epoch": e, "val_acc": a, "val_loss": 1 - a} for e, a in enumerate(accs)
    ]
    return {
        "dataset": "mnist_subset",
        "model": "mlp",
        "initializer": "default",
        "arm": arm,
        "optimizer": f"O{1 if momentum == 0 else 4}",
        "lr": 0.01,
        "momentum": momentum,
        "seed": seed,
        "seed_index": seed,
        "status": status,
        "monitor": "val_acc",
        "history": history,
        "test": {"acc": accs[-1]} if status == "completed" else None,
    }


def _runs(teleported_gain):
    runs = []
    for momentum in (0.0, 0.9):
        for seed in range(3):
            base = [0.1, 0.5, 0.7, 0.8]
            runs.append(_run("none", momentum, seed, base))
            boosted = [0.1] + [a + g for a, g in zip(base[1:], teleported_gain)]
            runs.append(_run("teleport", momentum, seed, boosted))
    return runs


def test_boost_claims_hold_when_teleported_runs_lead_early():
    table = runs_table(_runs([0.1, 0.05, 0.01]))
    claims = boost_claims(table, [1, 3], "published")
    assert [c["holds"] for c in claims] == [True, True]
    assert "+0.100" in claims[0]["reproduced"]


def test_boost_claims_fail_honestly():
    table = runs_table(_runs([-0.05, 0.0, 0.02]))
    claims = boost_claims(table, [1, 3], "published")
    assert [c["holds"] for c in claims] == [False, False]


def test_diverged_runs_are_counted_and_not_zero_filled_unless_asked():
    runs = _runs([0.1, 0.05, 0.01])
    runs.append(_run("teleport", 0.9, 3, [0.1, 0.6], status="diverged"))
    table = runs_table(runs)
    late = curves(table)
    point = late[(late["arm"] == "teleport") & (late["kind"] == "SGD + momentum")]
    assert point.set_index("epoch")["runs"].tolist() == [4, 4, 3, 3]
    assert "1 diverged" in boost_claims(table, [1, 3], "p")[0]["reproduced"]
    assert per_lr(table)["diverged"].sum() == 1
    filled = curves(zero_filled(table, 3))
    point = filled[(filled["arm"] == "teleport") & (filled["kind"] == "SGD + momentum")]
    assert point.set_index("epoch")["runs"].tolist() == [4, 4, 4, 4]


def test_per_lr_rows_ascend_in_learning_rate_within_each_line():
    # runs arrive in optimiser order O1 (0.01), O2 (0.001), O3 (0.0001): the per-lr panel
    # draws one line per arm and momentum through its rows in order
    runs = []
    for name, lr in (("O1", 0.01), ("O2", 0.001), ("O3", 0.0001)):
        for arm in ("teleport", "none"):
            run = _run(arm, 0.0, 0, [0.1, 0.2])
            runs.append({**run, "optimizer": name, "lr": lr})
    table = per_lr(runs_table(runs))
    for _, line in table.groupby(["arm", "momentum"]):
        assert line["lr"].tolist() == [0.0001, 0.001, 0.01]


def test_pseudo_claim_needs_pseudo_near_standard_and_below_teleported():
    runs = _runs([0.1, 0.05, 0.01])
    for momentum in (0.0, 0.9):
        for seed in range(3):
            runs.append(_run("pseudo", momentum, seed, [0.1, 0.51, 0.7, 0.8]))
    # on small inputs the claim is not applicable (spec §12), whatever the numbers say
    small = pseudo_claims(runs_table(runs), [1, 3])[0]
    assert (
        small["holds"] is None
        and "not applicable on mnist_subset" in small["reproduced"]
    )
    for run in runs:
        run["dataset"] = "cifar10"
    assert pseudo_claims(runs_table(runs), [1, 3])[0]["holds"] is True
    for run in runs:
        if run["arm"] == "pseudo":
            run["history"][1]["val_acc"] = 0.65
    assert pseudo_claims(runs_table(runs), [1, 3])[0]["holds"] is False


# -- data and one training run --------------------------------------------------------------
def test_holdout_is_seeded_and_disjoint():
    keep, held = holdout(100, 10, seed=3)
    again = holdout(100, 10, seed=3)
    assert np.array_equal(keep, again[0]) and np.array_equal(held, again[1])
    assert len(held) == 10 and not set(keep) & set(held)
    with pytest.raises(ValueError, match="cannot hold out 100 of 100"):
        holdout(100, 100, 0)


def test_cifar_parts_from_a_root_in_the_standard_layout(tmp_path):
    make_cifar10_root(tmp_path, per_batch=10)
    data = {"root": str(tmp_path), "verify_checksums": False}
    parts = load_parts("cifar10", data=data, n_validation=5, seed=0)
    assert (len(parts.train), len(parts.validation), len(parts.test)) == (45, 5, 10)
    x, y = parts.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    batches = batch_list(parts, 8, 7, torch.Generator().manual_seed(0))
    assert len(batches) == 7 and batches[0][0].shape == (8, 3, 32, 32)
    with pytest.raises(Exception, match="md5|corrupt|integrity"):
        load_parts("cifar10", data={**data, "verify_checksums": True}, n_validation=5)


def _protocol(**kw):
    base = dict(
        epochs=2,
        batch_size=32,
        validation=100,
        paper_eval_on_test=False,
        cob_range=0.9,
        sampling_type="inter_landscape",
        plateau_factor=0.1,
        plateau_patience=10,
        top5=False,
    )
    return Protocol(**{**base, **kw})


def test_arms_of_one_cell_start_from_the_same_function(tmp_path):
    parts = load_parts("random", n_validation=100, random_sizes=(400, 100))
    spec = {"model": "mlp", "activation": "relu"}
    init = {"name": "default", "scheme": "default"}
    opt = {"name": "O4", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}
    results = {
        arm: train_run(parts, "mnist_subset", spec, init, arm, opt, _protocol(), seed=7)
        for arm in ("none", "teleport", "pseudo")
    }
    first = {arm: r["history"][0]["val_loss"] for arm, r in results.items()}
    assert math.isclose(first["none"], first["teleport"], rel_tol=1e-5)
    assert not math.isclose(first["none"], first["pseudo"], rel_tol=1e-5)
    for r in results.values():
        assert r["status"] == "completed" and len(r["history"]) == 3
        assert 0 <= r["test"]["acc"] <= 1
    again = train_run(
        parts, "mnist_subset", spec, init, "teleport", opt, _protocol(), seed=7
    )

    def numbers(history):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in history]

    # bit-identical on CPU
    assert numbers(again["history"]) == numbers(results["teleport"]["history"])


# -- flatness -------------------------------------------------------------------------------
def test_flatness_profile_keeps_the_endpoints_and_changes_in_between():
    from weightspace.teleport.flatness import profile
    from weightspace.training.batches import TensorBatches

    torch.manual_seed(0)
    x, y = torch.randn(200, 1, 28, 28), torch.randint(0, 10, (200,))
    loaders = {"train": TensorBatches(x, y, 100)}
    gen = torch.Generator().manual_seed(0)
    ends = {}
    for name in ("A", "B"):
        net = TeleportableModel(_mlp(seed=len(ends)), X)
        weights = net.get_weights()
        cob = net.generate_random_cob(0.9, generator=gen)
        net.teleport(cob)
        ends[name] = ((weights, torch.ones_like(cob)), (net.get_weights(), cob))
    alphas = [-0.5, 0.0, 0.5, 1.0, 1.5]
    rows = {}
    for pair, index in (("before", 0), ("after", 1)):
        pair_ends = (ends["A"][index], ends["B"][index])
        rows[pair] = [r["loss"] for r in profile(net, pair_ends, alphas, loaders)]
    for i in (1, 3):  # alpha = 0 and 1: the teleported endpoints keep their loss
        assert math.isclose(rows["before"][i], rows["after"][i], rel_tol=1e-5)
    changes = [abs(a - b) for a, b in zip(rows["before"], rows["after"])]
    assert min(changes[0], changes[2], changes[4]) > 1e-3
    with pytest.raises(ValueError, match="needs positive CoBs"):
        negative = (ends["A"][1][0], -ends["A"][1][1])
        profile(net, (negative, ends["B"][1]), alphas, loaders)


class _MemoryCheckpoint:
    def __init__(self, path):
        self.path, self.payload, self.saves = str(path), None, 0

    def load(self):
        return copy.deepcopy(self.payload)

    def save(self, payload):
        self.payload, self.saves = copy.deepcopy(payload), self.saves + 1


def test_a_killed_training_job_resumes_after_its_last_finished_run(
    tmp_path, monkeypatch
):
    from weightspace.pipeline.config import resolve_config
    from weightspace.teleport import training
    from weightspace.teleport.jobs import training_job_config, training_jobs

    config = resolve_config(["config/tiny.yaml"], {}, "config")
    job = training_job_config(config, *training_jobs(config)[0])
    # the job crosses arms: two standard runs, then the first teleported one
    assert [r["arm"] for r in job["runs"]] == ["none", "none", "teleport"]
    job["protocol"]["checkpoint"] = True
    parts = load_parts("random", n_validation=200, random_sizes=(600, 100))
    uninterrupted = training.train_job(parts, job, _MemoryCheckpoint(tmp_path / "a"))

    real, calls = training.train_run, []

    def killed_in_the_first_teleported_run(*args, **kw):
        calls.append((args[4], args[5]["name"]))  # (arm, optimiser)
        if args[4] == "teleport" and len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    checkpoint = _MemoryCheckpoint(tmp_path / "b")
    monkeypatch.setattr(training, "train_run", killed_in_the_first_teleported_run)
    with pytest.raises(KeyboardInterrupt):
        training.train_job(parts, job, checkpoint)
    assert checkpoint.saves == 2  # both standard runs are kept
    resumed = training.train_job(parts, job, checkpoint)
    # the resumed job trains only the teleported run
    killed = [("none", "O1"), ("none", "O4"), ("teleport", "O1")]
    assert calls == [*killed, ("teleport", "O1")]

    def numbers(runs):
        return [
            [{k: v for k, v in e.items() if k != "seconds"} for e in r["history"]]
            for r in runs
        ]

    assert [r["arm"] for r in resumed] == ["none", "none", "teleport"]
    assert [r["arm_stats"] for r in resumed] == [r["arm_stats"] for r in uninterrupted]
    assert numbers(resumed) == numbers(uninterrupted)
    assert not list(tmp_path.glob("*.run"))  # the in-run checkpoint is removed
