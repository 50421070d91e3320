"""How the teleportation matrix is cut into jobs (weightspace.teleport.jobs) and the
semantic checks of its config (weightspace.teleport.config), without Snakemake."""

import copy
from pathlib import Path

import pytest

from weightspace.models import model_names
from weightspace.pipeline.config import resolve_config
from weightspace.teleport.config import MODELS, check
from weightspace.teleport.jobs import (
    figure_training_jobs,
    gradients_job_config,
    gradients_jobs,
    training_groups,
    training_job_config,
    training_jobs,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def _config(scale: str) -> dict:
    return resolve_config([str(CONFIG_DIR / f"{scale}.yaml")], {}, str(CONFIG_DIR))


@pytest.mark.parametrize("scale", ["quick", "paper", "tiny", "paper_smoke"])
def test_the_shipped_configs_pass(scale):
    assert check(_config(scale)) == []


def test_known_models_are_registered():
    assert set(MODELS) <= set(model_names())


def test_paper_matrix_has_the_spec_run_counts():
    config = _config("paper")
    groups = training_groups(config)
    runs = {cell: len(r) for cell, r in groups.items()}
    # 480 (Fig. 6) + 360 (Fig. 8) + 960 (Fig. 9) + 240 new pseudo runs (Fig. 10 shares
    # its standard and teleported runs with Fig. 6)
    assert sum(runs.values()) == 480 + 360 + 960 + 240
    # 6 optimisers x 5 runs per arm: the cells of Figs 6 and 10 hold three arms, those
    # of Figs 8 and 9 two
    assert sorted(set(runs.values())) == [60, 90]
    assert runs[("cifar10", "vgg16_bn", "default")] == 90
    assert len(training_jobs(config)) == 2040  # one run per GPU job
    fig10 = figure_training_jobs(config, "fig10_pseudo")
    assert len(fig10) == 2 * 4 * 3 * 30
    # a one-run job is named by its arm, and Fig. 6 waits on none of the pseudo runs
    fig6 = figure_training_jobs(config, "fig6_convergence")
    assert {job[4] for job in fig6} == {"none", "teleport"}
    assert len(fig6) == 2 * 4 * 2 * 30
    # Fig. 7: one GPU job per architecture, named by its model id
    assert gradients_jobs(config) == [
        "mlp_5x500",
        "vgg16_bn",
        "resnet18",
        "densenet121",
    ]


def test_quick_has_one_training_job_per_cell_holding_all_its_arms():
    config = _config("quick")
    jobs = training_jobs(config)
    cells = training_groups(config)
    assert len(jobs) == len(cells) == 6
    assert [job[3] for job in jobs] == [0] * 6  # one chunk per cell
    relu = training_job_config(
        config,
        "mnist_subset",
        "mlp_5x128-relu",
        "default",
        0,
        "none+teleport+pseudo+norm_matched+he_init",
    )
    arms = [run["arm"] for run in relu["runs"]]
    # every arm of Figs 6 and 10, arm by arm, each with 6 optimisers x 2 seeds
    assert list(dict.fromkeys(arms)) == [
        "none",
        "teleport",
        "pseudo",
        "norm_matched",
        "he_init",
    ]
    assert [arms.count(arm) for arm in dict.fromkeys(arms)] == [12] * 5
    assert relu["runs"][:2] == [
        {"arm": "none", "optimizer": relu["runs"][0]["optimizer"], "seed": 0},
        {"arm": "none", "optimizer": relu["runs"][0]["optimizer"], "seed": 1},
    ]
    fig6 = figure_training_jobs(config, "fig6_convergence")
    fig10 = figure_training_jobs(config, "fig10_pseudo")
    assert fig6 == fig10  # Figs 6 and 10 share their one cell's job
    assert len(jobs) == len(set(jobs))
    total = sum(len(training_job_config(config, *job)["runs"]) for job in jobs)
    assert total == sum(len(r) for r in cells.values()) == 180
    assert gradients_jobs(config) == [
        "mlp_5x500+vgg_tiny_bn+resnet_tiny_imagenet_stem+densenet_tiny_imagenet_stem"
    ]


def test_chunks_may_cross_arms_and_are_named_by_the_arms_they_hold():
    config = _config("tiny")
    assert config["teleport"]["training"]["runs_per_job"] == 3
    cell = ("mnist_subset", "mlp-relu", "default")
    jobs = [job for job in training_jobs(config) if job[:3] == cell]
    # none, teleport and pseudo x 2 optimisers x 1 seed, cut into chunks of 3
    assert jobs == [(*cell, 0, "none+teleport"), (*cell, 1, "teleport+pseudo")]
    second = training_job_config(config, *jobs[1])
    assert [(r["arm"], r["optimizer"]["name"]) for r in second["runs"]] == [
        ("teleport", "O4"),
        ("pseudo", "O1"),
        ("pseudo", "O4"),
    ]
    with pytest.raises(ValueError, match="holds the arms 'teleport\\+pseudo', not"):
        training_job_config(config, *cell, 1, "pseudo")
    with pytest.raises(ValueError, match="has chunks 0..1, not 2"):
        training_job_config(config, *cell, 2, "pseudo")
    with pytest.raises(ValueError, match="no training figure asks for the cell"):
        training_job_config(config, "mnist_subset", "mlp-elu", "default", 0, "none")


def test_gradients_jobs_hold_models_per_job_architectures_in_config_order():
    config = copy.deepcopy(_config("quick"))
    block = config["teleport"]["fig7_gradients"]
    block["models_per_job"] = 3
    jobs = gradients_jobs(config)
    assert jobs == [
        "mlp_5x500+vgg_tiny_bn+resnet_tiny_imagenet_stem",
        "densenet_tiny_imagenet_stem",
    ]
    first = gradients_job_config(config, jobs[0])
    assert [s["model"] for s in first["models"]] == jobs[0].split("+")
    assert "models_per_job" not in first
    with pytest.raises(ValueError, match="no Fig. 7 job holds the models"):
        gradients_job_config(config, "mlp_5x500")


def test_a_training_job_reads_only_its_own_cell():
    config = _config("quick")
    job = training_jobs(config)[0]
    before = training_job_config(config, *job)
    changed = copy.deepcopy(config)
    changed["teleport"]["training"]["box_epochs"] = [1, 2]  # read by the figures only
    changed["teleport"]["fig8_activations"]["arms"] = ["none", "teleport", "pseudo"]
    assert training_job_config(changed, *job) == before
    changed["teleport"]["training"]["epochs"] = 11
    assert training_job_config(changed, *job) != before


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda t: t["fig6_convergence"].update(models=[{"model": "resnet99"}]),
            "teleport.fig6_convergence.models.0: unknown model 'resnet99'",
        ),
        (
            lambda t: t["fig7_gradients"]["models"].append(
                {"model": "vgg16", "activation": "tanh"}
            ),
            "vgg16 takes no activation option",
        ),
        (
            lambda t: t["fig9_initializers"].update(initializers=["orthogonal"]),
            "'orthogonal' is not defined in teleport.training.initializers",
        ),
        (
            lambda t: t["training"].update(box_epochs=[3, 12]),
            "box_epochs: [12] lie after the last epoch",
        ),
        (
            lambda t: t["fig5_flatness"].update(
                alphas={"start": -0.45, "stop": 1.5, "count": 41}
            ),
            "the grid must contain 0 and 1",
        ),
        (
            lambda t: t["training"].update(validation=3990),
            "leaves less than one batch",
        ),
        (
            lambda t: t["training"].update(validation=0),
            "hold out at least one sample or set paper_eval_on_test",
        ),
        (
            lambda t: t["fig4_micro"].update(datasets=["random"]),
            "random data takes the shape of a real data set",
        ),
    ],
)
def test_problems_name_the_key_and_the_fix(change, expected):
    config = copy.deepcopy(_config("quick"))
    change(config["teleport"])
    problems = check(config)
    assert any(expected in p for p in problems), problems
