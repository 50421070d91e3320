"""The credit workflow: the paper plan with its full job list, the clear error without an
ImageNet folder, a tiny run of every credit target, and a paper-scale smoke run (the
paper config's ImageNet loaders, ResNets and one-run GPU jobs, cut by
config/paper_smoke.yaml) on a synthetic ImageFolder tree of small JPEG and PNG files."""

import json
import re
from pathlib import Path

import pytest
from test_credit_workflow_units import make_imagenet_root

from weightspace.pipeline.registry import load_registry
from workflow_utils import copy_workflow, planned_jobs, snakemake

TINY = ("--configfile=config/tiny.yaml",)
SMOKE_ROOT = "resources/smoke_data/imagenet"


def _outputs_of_every_credit_target(run):
    for target in load_registry().of_paper("credit"):
        assert target.built, target.name
        for out in target.outputs(str(run)):
            assert Path(out).stat().st_size > 0, out


def _chunk_results(run):
    return sorted(
        p
        for p in (run / "credit" / "runs").rglob("chunk*.json")
        if not p.name.endswith(".record.json")
    )


def test_paper_plan_has_the_full_job_list(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    proc = snakemake(work, "-n", "credit", "--configfile=config/paper.yaml")
    jobs = planned_jobs(proc)
    # table: ResNet-18 and -50 x 7 rules; noise: ResNet-18 x 4 rules x 3 noisy
    # variances (its noiseless runs are the table's); one run per GPU job
    assert jobs["credit_train"] == 2 * 7 + 4 * 3
    for rule in ("credit_tabulate_rules", "credit_plot_alignment", "credit_plot_noise"):
        assert jobs[rule] == 1
    text = proc.stdout + proc.stderr
    files = set(re.findall(r"credit/runs/imagenet/(\S+?)\.json", text))
    assert len({f for f in files if not f.endswith(".record")}) == 26
    for model in ("resnet18", "resnet50"):
        assert f"{model}/noise0/chunk0_backprop" in text
    for variance in ("0.01", "0.1", "1"):
        assert f"resnet18/noise{variance}/chunk3_kolen_pollack" in text
    assert not (work / "results").exists()


def test_without_an_imagenet_folder_the_run_stops_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    proc = snakemake(
        work, "credit_table_rules", "--configfile=config/paper.yaml", check=False
    )
    assert proc.returncode != 0
    assert "data.imagenet_root is null; set it" in proc.stdout + proc.stderr
    assert not (work / "results" / "paper" / "credit").exists()


@pytest.mark.slow
def test_tiny_run_of_every_credit_target(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    snakemake(work, "credit", *TINY)
    run = work / "results" / "tiny"
    _outputs_of_every_credit_target(run)
    chunks = _chunk_results(run)
    # jobs of 5 runs: the MLP's noiseless cell holds the table's 8 variants (1 seed)
    # and the noise figure's 3 (2 seeds), the ResNet's the table's 8, and the noisy
    # MLP cell the noise figure's 6 runs
    assert {c.relative_to(run / "credit" / "runs").as_posix() for c in chunks} == {
        "mnist_subset/mlp/noise0/chunk0_backprop+feedback+mirror+information.json",
        "mnist_subset/mlp/noise0/chunk1_symmetric+activation+kolen_pollack.json",
        "mnist_subset/mlp/noise0/chunk2_mirror_real_inputs.json",
        "mnist_subset/mlp/noise0.1/chunk0_backprop+symmetric+kolen_pollack.json",
        "mnist_subset/mlp/noise0.1/chunk1_kolen_pollack.json",
        "mnist_subset/resnet_v1_tiny/noise0/chunk0_backprop+feedback+mirror+information+symmetric.json",
        "mnist_subset/resnet_v1_tiny/noise0/chunk1_activation+kolen_pollack+mirror_real_inputs.json",
    }
    for chunk in chunks:
        for result in json.loads(chunk.read_text())["runs"]:
            assert result["status"] == "completed"
            # IA alternates task and alignment steps: twice the steps of one epoch
            steps = 6 if result["variant"] == "information" else 3
            assert result["steps"] == result["total_steps"] == steps
    claims = json.loads((run / "credit" / "credit_table_rules.claims.json").read_text())
    assert claims and all(
        set(c) == {"claim", "published", "reproduced", "holds"} for c in claims
    )
    assert not list(run.rglob("*.state*")), "checkpoints are removed after success"
    again = snakemake(work, "-n", "credit", *TINY)
    assert planned_jobs(again) == {}


@pytest.mark.slow
def test_paper_smoke_run_on_a_synthetic_imagenet_folder(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    make_imagenet_root(work / SMOKE_ROOT, classes=2, train=4, val=3)
    snakemake(
        work,
        "credit",
        "--configfile=config/paper_smoke.yaml",
        "--config",
        f"data={{'imagenet_root': '{SMOKE_ROOT}'}}",
        timeout=1800,
    )
    run = work / "results" / "paper_smoke"
    _outputs_of_every_credit_target(run)
    chunks = _chunk_results(run)
    # one run per job: SA on ResNet-18 and ResNet-50 (table and alignment figure),
    # KP on ResNet-18 without and with update noise
    assert len(chunks) == 4
    seen = set()
    for chunk in chunks:
        (result,) = json.loads(chunk.read_text())["runs"]
        assert result["status"] == "completed" and result["dataset"] == "imagenet"
        assert result["steps"] == 2 and result["steps_per_epoch"] == 2
        # the paper's models: ImageNet ResNets v1 with 1000 outputs
        assert result["forward_parameters"] > 11_000_000
        seen.add((result["model"], result["variant"], result["noise"]["variance"]))
        record = json.loads(chunk.with_name(chunk.stem + ".record.json").read_text())
        assert any(k.startswith("train/") for k in record["data"])
    assert seen == {
        ("resnet18", "symmetric", 0.0),
        ("resnet50", "symmetric", 0.0),
        ("resnet18", "kolen_pollack", 0.0),
        ("resnet18", "kolen_pollack", 0.1),
    }
    assert not list(run.rglob("*.state*")), "checkpoints are removed after success"
