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
    runs = {key: len(r) for key, r in groups.items()}
    # 480 (Fig. 6) + 360 (Fig. 8) + 960 (Fig. 9) + 240 new pseudo runs (Fig. 10 shares
    # its standard and teleported runs with Fig. 6)
    assert sum(runs.values()) == 480 + 360 + 960 + 240
    assert set(runs.values()) == {30}  # 6 optimisers x 5 runs
    assert len(training_jobs(config)) == 2040  # one run per GPU job
    fig10 = figure_training_jobs(config, "fig10_pseudo")
    assert len(fig10) == 2 * 4 * 3 * 30


def test_quick_jobs_hold_many_runs_and_shared_runs_are_trained_once():
    config = _config("quick")
    jobs = training_jobs(config)
    per_job = config["teleport"]["training"]["runs_per_job"]
    assert per_job > 1
    fig6 = set(figure_training_jobs(config, "fig6_convergence"))
    fig10 = set(figure_training_jobs(config, "fig10_pseudo"))
    assert fig6 <= fig10  # standard and teleported arms are shared
    assert len(jobs) == len(set(jobs))
    total = sum(len(training_job_config(config, *job)["runs"]) for job in jobs)
    assert total == sum(len(r) for r in training_groups(config).values())


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
