"""The SLURM profile against a real SLURM on localhost, and the local profiles in dry runs.

The SLURM tests run a tiny self-contained workflow (two independent rules, one rule depending on
both, one GPU rule) through `--workflow-profile profiles/slurm` and check from the outputs and
from `scontrol` that every job ran as its own SLURM job, CPU rules in the CPU partition and the GPU
rule in the GPU partition with one GPU requested. The test cluster's node advertises one GPU that
exists only for the scheduler (see tests/slurm/start_local_slurm.sh).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import ROOT, SlurmCluster, scontrol_job  # noqa: E402

PROFILES = ROOT / "profiles"

# The GPU pattern documented in profiles/README.md: a rule that needs a GPU asks for `gpu` and,
# in the same place, for the GPU partition (read from the environment).
TINY_SNAKEFILE = r"""
import os


def gpu_resources(n=1, **other):
    if not n:
        return other
    partition = os.environ.get("WEIGHTSPACE_GPU_PARTITION") or "gpu"
    return {"gpu": n, "slurm_partition": partition, **other}


localrules: all


rule all:
    input:
        "out/c.txt",
        "out/g.txt",


rule a:
    output:
        "out/a.txt",
    resources:
        mem_mb=200,
        runtime=5,
    shell:
        "echo ${{SLURM_JOB_ID:-}} ${{SLURM_JOB_PARTITION:-}} > {output}"


rule b:
    output:
        "out/b.txt",
    resources:
        mem_mb=200,
        runtime=5,
    shell:
        "echo ${{SLURM_JOB_ID:-}} ${{SLURM_JOB_PARTITION:-}} > {output}"


rule c:
    input:
        "out/a.txt",
        "out/b.txt",
    output:
        "out/c.txt",
    resources:
        mem_mb=200,
        runtime=5,
    shell:
        "cat {input} > /dev/null && echo ${{SLURM_JOB_ID:-}} ${{SLURM_JOB_PARTITION:-}} > {output}"


rule g:
    output:
        "out/g.txt",
    resources:
        **gpu_resources(1, mem_mb=200, runtime=5),
    shell:
        "echo ${{SLURM_JOB_ID:-}} ${{SLURM_JOB_PARTITION:-}} ${{CUDA_VISIBLE_DEVICES:-none}} > {output}"
"""

CPU_RULES = ("a", "b", "c")
ALL_RULES = CPU_RULES + ("g",)


def write_tiny_workflow(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    snakefile = directory / "Snakefile"
    snakefile.write_text(TINY_SNAKEFILE)
    return snakefile


def read_job(directory: Path, rule: str) -> list[str]:
    """Fields an output holds: SLURM job id, partition[, CUDA_VISIBLE_DEVICES]."""
    return (directory / "out" / f"{rule}.txt").read_text().split()


# ----------------------------------------------------------------------------------------------
# Dry runs: the profiles parse and set the resources they promise (no SLURM needed).
# ----------------------------------------------------------------------------------------------
def dry_run(directory: Path, *args: str, **env: str) -> str:
    write_tiny_workflow(directory)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTSPACE_")}
    full_env.update(env)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--directory",
            str(directory),
            "--dry-run",
            "--forceall",
            *args,
        ],
        cwd=directory,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def job_resources(log: str) -> dict[str, str]:
    """rule name -> its `resources:` line from a dry run."""
    found = {}
    for match in re.finditer(
        r"\nrule (\w+):\n(?:    .*\n)*?    resources: (.*)\n", log
    ):
        found[match.group(1)] = match.group(2)
    return found


def test_slurm_profile_resources_from_environment(tmp_path):
    log = dry_run(
        tmp_path,
        "--workflow-profile",
        str(PROFILES / "slurm"),
        WEIGHTSPACE_SLURM_ACCOUNT="proj42",
        WEIGHTSPACE_CPU_PARTITION="short",
        WEIGHTSPACE_GPU_PARTITION="a100",
    )
    res = job_resources(log)
    assert set(res) >= set(ALL_RULES), log
    for rule in CPU_RULES:
        assert (
            "slurm_partition=short" in res[rule] and "slurm_account=proj42" in res[rule]
        )
        assert "gpu=" not in res[rule]
    assert "slurm_partition=a100" in res["g"] and "gpu=1" in res["g"]


def test_slurm_profile_unset_environment_means_cluster_defaults(tmp_path):
    res = job_resources(
        dry_run(tmp_path, "--workflow-profile", str(PROFILES / "slurm"))
    )
    # Empty account and partition: the plugin omits -A and uses the cluster's default partition.
    assert "slurm_account=," in res["a"] and "slurm_partition=," in res["a"]
    assert "runtime=60" in res["all"] and "mem_mb=4000" in res["all"]
    assert "slurm_partition=gpu" in res["g"]


@pytest.mark.parametrize(
    ("profile", "env", "gpus"),
    [
        ("local", {}, 0),
        ("gpu-local", {}, 1),
        ("gpu-local", {"WEIGHTSPACE_LOCAL_GPUS": "2"}, 2),
    ],
)
def test_local_profiles_gpu_limit(tmp_path, profile, env, gpus):
    # Not a dry run: the global resource limits are printed only when jobs are scheduled. The
    # tiny workflow writes an empty SLURM job id outside SLURM, which is fine here.
    write_tiny_workflow(tmp_path)
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WEIGHTSPACE_", "SLURM_")) and k != "CUDA_VISIBLE_DEVICES"
    }
    full_env.update(env)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--workflow-profile",
            str(PROFILES / profile),
            "--directory",
            str(tmp_path),
            "--cores",
            "2",
        ],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert re.search(rf'Provided resources: .*gpu=Resource\("gpu", {gpus}\)', log), log
    # A GPU rule is scaled down to the GPUs there are, as Snakemake does with threads.
    assert re.search(
        rf"localrule g:\n(?:    .*\n)*?    resources: .*gpu={min(gpus, 1)}\b", log
    ), log


# ----------------------------------------------------------------------------------------------
# A real SLURM.
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_slurm_run(slurm_cluster: SlurmCluster, tmp_path_factory):
    """Run the tiny workflow once through the SLURM profile; the tests below inspect the result."""
    directory = tmp_path_factory.mktemp("slurm_tiny")
    write_tiny_workflow(directory)
    proc = slurm_cluster.run_snakemake(directory, timeout=300)
    jobs = {rule: read_job(directory, rule) for rule in ALL_RULES}
    return directory, proc, jobs


@pytest.mark.slurm
def test_every_job_is_its_own_slurm_job(tiny_slurm_run):
    directory, proc, jobs = tiny_slurm_run
    ids = {rule: fields[0] if fields else "" for rule, fields in jobs.items()}
    for rule, job_id in ids.items():
        assert re.fullmatch(r"\d+", job_id), (
            f"rule {rule} did not run as a SLURM job: {jobs[rule]}"
        )
    assert len(set(ids.values())) == len(ids), f"SLURM job ids are not distinct: {ids}"
    for rule, job_id in ids.items():
        info = scontrol_job(job_id)
        assert info["JobState"] == "COMPLETED", info
        # The plugin labels each submission with the rule it runs.
        assert info["Comment"] == f"rule_{rule}", info
        assert f"has been submitted with SLURM jobid {job_id} " in proc.stderr


@pytest.mark.slurm
def test_dependent_job_ran_after_its_inputs(tiny_slurm_run):
    _, _, jobs = tiny_slurm_run
    start_c = scontrol_job(jobs["c"][0])["StartTime"]
    for rule in ("a", "b"):
        assert scontrol_job(jobs[rule][0])["EndTime"] <= start_c


@pytest.mark.slurm
def test_cpu_rules_go_to_cpu_partition(tiny_slurm_run, slurm_cluster):
    _, _, jobs = tiny_slurm_run
    for rule in CPU_RULES:
        job_id, partition = jobs[rule][:2]
        assert partition == slurm_cluster.cpu_partition
        info = scontrol_job(job_id)
        assert info["Partition"] == slurm_cluster.cpu_partition, info
        assert "gpu" not in info.get("TresPerJob", "") + info.get("TresPerNode", ""), (
            info
        )


@pytest.mark.slurm
def test_gpu_rule_goes_to_gpu_partition_with_one_gpu(tiny_slurm_run, slurm_cluster):
    _, _, jobs = tiny_slurm_run
    job_id, partition, devices = jobs["g"]
    assert partition == slurm_cluster.gpu_partition
    # SLURM bound one GPU to the job step that ran the rule.
    assert re.fullmatch(r"\d+", devices), (
        f"CUDA_VISIBLE_DEVICES in the GPU job: {devices}"
    )
    info = scontrol_job(job_id)
    assert info["Partition"] == slurm_cluster.gpu_partition, info
    # The plugin turns resources gpu=1 into `sbatch --gpus=1`.
    assert info.get("TresPerJob") == "gres:gpu:1", info


@pytest.mark.slurm
def test_second_run_submits_nothing(tiny_slurm_run, slurm_cluster):
    directory, _, _ = tiny_slurm_run
    proc = slurm_cluster.run_snakemake(directory, timeout=120)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert "has been submitted with SLURM jobid" not in proc.stdout + proc.stderr
