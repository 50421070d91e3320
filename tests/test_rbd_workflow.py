"""The random-bases workflow: the paper-scale plan of every rbd target with its job
count, and a paper-scale smoke run (the paper config's loaders, networks, generator
and one-run-per-job layout, cut by config/paper_smoke.yaml) on synthetic CIFAR-10 files
in the standard on-disk layout."""

import json

import pytest

from data_fixtures import make_cifar10_root
from workflow_utils import copy_workflow, planned_jobs, snakemake

TABLES = ("table1", "table_distributed")
FIGURES = ("fig_dimensions", "fig_compartments", "fig_correlation")


def test_paper_plan_of_every_target(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    jobs = planned_jobs(snakemake(work, "-n", "rbd", "--configfile=config/paper.yaml"))
    # one run per GPU job: Table 1 (3 data sets x 2 networks x 4 methods x 3 seeds),
    # the d sweep (2 methods x 10 d), compartments (2 networks x 4 settings x 3
    # seeds), workers (3 x 3 seeds); the correlation figure reads Table 1's runs
    assert jobs["rbd_train"] == 72 + 20 + 24 + 9
    for rule in (
        "rbd_tabulate_table1",
        "rbd_plot_dimensions",
        "rbd_plot_compartments",
        "rbd_plot_correlation",
        "rbd_tabulate_distributed",
    ):
        assert jobs[rule] == 1
    assert jobs["prepare_torchvision_dataset"] == 3


@pytest.mark.slow
def test_paper_smoke_run_on_synthetic_cifar(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    make_cifar10_root(work / "resources" / "smoke_data", per_batch=24)
    snakemake(work, "rbd", "--configfile=config/paper_smoke.yaml", timeout=900)
    run = work / "results" / "paper_smoke" / "rbd"
    for table in TABLES:
        for ext in ("csv", "html", "tex", "claims.json"):
            assert (run / f"rbd_{table}.{ext}").stat().st_size > 0
    for figure in FIGURES:
        for ext in ("pdf", "png", "csv", "claims.json"):
            assert (run / f"rbd_{figure}.{ext}").stat().st_size > 0
    runs = []
    for path in sorted(run.glob("*/chunk*.json")):
        if not path.name.endswith(".record.json"):
            runs += json.loads(path.read_text())["runs"]
    # one run per job, on CIFAR-10 with the paper's generator and networks (D of §6)
    assert all(
        len(json.loads(p.read_text())["runs"]) == 1 for p in run.glob("*/chunk?.json")
    )
    assert {r["dataset"] for r in runs} == {"cifar10"}
    assert {r["generator"] for r in runs} == {"torch"}
    assert {r["parameters"] for r in runs if r["network"] == "fc"} == {394_634}
    assert {r["parameters"] for r in runs if r["network"] == "cnn"} == {122_570}
    assert all(r["status"] == "completed" and "test" in r for r in runs)
    distributed = [r for r in runs if r["workers"] == 2]
    assert distributed and all(
        h["copies_identical"] for r in distributed for h in r["history"][1:]
    )
