"""The teleportation workflow: the quick and paper-scale plans with their job counts,
and a paper-scale smoke run (the paper config's loaders, models and job layout, cut by
config/paper_smoke.yaml) on synthetic CIFAR-10 files in the standard on-disk layout."""

import json

import pytest

from data_fixtures import make_cifar10_root
from workflow_utils import copy_workflow, planned_jobs, snakemake


def test_paper_plan_has_the_full_job_count(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    jobs = planned_jobs(
        snakemake(work, "-n", "teleport", "--configfile=config/paper.yaml", timeout=900)
    )
    # 480 + 360 + 960 runs of Figs 6, 8, 9 and the 240 pseudo runs of Fig. 10 (its
    # standard and teleported runs are Fig. 6's), one GPU job each
    assert jobs["teleport_train"] == 2040
    assert jobs["teleport_gradients"] == 4
    assert jobs["teleport_flatness_train"] == 2
    assert jobs["teleport_plot_training"] == 4
    for rule in ("teleport_micro", "teleport_flatness", "teleport_histograms"):
        assert jobs[rule] == 1
    assert jobs["prepare_torchvision_dataset"] == 2  # CIFAR-10 and CIFAR-100


def test_quick_plan_has_one_training_job_per_cell(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    jobs = planned_jobs(snakemake(work, "-n", "teleport", timeout=900))
    # a job per (data set, model, initialiser) holds the runs of all its arms: the ReLU
    # MLP with default init (the five arms of Figs 6 and 10), three activations (Fig. 8)
    # and two initialisers (Fig. 9); the four Fig. 7 architectures share one job
    assert jobs["teleport_train"] == 6
    assert jobs["teleport_gradients"] == 1
    assert jobs["teleport_flatness_train"] == 2
    assert jobs["teleport_plot_training"] == 4


@pytest.mark.slow
def test_paper_smoke_run_on_synthetic_cifar(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    make_cifar10_root(work / "resources" / "smoke_data", per_batch=24)
    snakemake(work, "teleport", "--configfile=config/paper_smoke.yaml", timeout=1200)
    run = work / "results" / "paper_smoke" / "teleport"
    for figure in (
        "fig4_micro",
        "fig5_flatness",
        "fig6_convergence",
        "fig7_gradients",
        "fig8_activations",
        "fig9_initializers",
        "fig10_pseudo",
        "fig11_histograms",
    ):
        for ext in ("pdf", "png", "csv", "claims.json"):
            assert (run / f"teleport_{figure}.{ext}").stat().st_size > 0
    chunks = sorted((run / "runs").rglob("chunk*.json"))
    chunks = [c for c in chunks if not c.name.endswith(".record.json")]
    # one run per job, each trained on CIFAR-shaped data through torchvision: the
    # standard and teleported arms of resnet18_cifar (Fig. 6), the tanh MLP (Fig. 8) and
    # vgg16_bn (Fig. 9), and densenet121's standard, pseudo and teleported arms (Fig. 10)
    assert len(chunks) == 9
    for chunk in chunks:
        (result,) = json.loads(chunk.read_text())["runs"]
        assert result["status"] == "completed" and result["history"][-1]["epoch"] == 1
        assert chunk.name.endswith(f"_{result['arm']}.json")  # the path names the arm
    models = {json.loads(c.read_text())["runs"][0]["model"] for c in chunks}
    assert models == {"resnet18_cifar", "vgg16_bn", "densenet121", "mlp_5x500-tanh"}
    assert not list(run.rglob("*.state*")), "checkpoints are removed after success"
