"""The project's own tiny workflow through the SLURM profile on a real local SLURM."""

import re

import pytest

from weightspace.provenance.runrecord import load_record
from workflow_utils import copy_workflow

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_tiny_workflow_runs_as_slurm_jobs(slurm_cluster, tmp_path):
    work = copy_workflow(tmp_path / "repo")
    # Two targets of the tiny workflow (4 jobs): every SLURM job costs the plugin's polling delay.
    slurm_cluster.run_snakemake(
        work,
        "relu_fig_kink_distributions",
        "results/tiny/data/mnist_subset.npz",
        "--configfile=config/tiny.yaml",
        timeout=600,
    )
    run = work / "results" / "tiny"
    assert (run / "relu" / "relu_fig_kink_distributions.png").stat().st_size > 0
    records = [load_record(p) for p in run.rglob("*record.json")]
    assert {r["rule"] for r in records} >= {
        "prepare_mnist_subset",
        "relu_kink_distributions",
        "relu_plot_kink_distributions",
    }
    job_ids = [r["slurm"]["job_id"] if r["slurm"] else None for r in records]
    assert all(j is not None and re.fullmatch(r"\d+", str(j)) for j in job_ids), job_ids
    assert len(set(job_ids)) == len(job_ids), (
        f"jobs shared a SLURM allocation: {job_ids}"
    )
