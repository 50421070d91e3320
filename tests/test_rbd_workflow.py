"""The random-bases workflow: the paper-scale plan of rbd_table1 with its job count."""

from workflow_utils import copy_workflow, planned_jobs, snakemake


def test_paper_plan_of_table1(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    jobs = planned_jobs(
        snakemake(work, "-n", "rbd_table1", "--configfile=config/paper.yaml")
    )
    # 3 data sets x 2 networks x 4 methods x 3 seeds, one run per GPU job
    assert jobs["rbd_train"] == 72
    assert jobs["rbd_tabulate_table1"] == 1
    assert jobs["prepare_torchvision_dataset"] == 3
