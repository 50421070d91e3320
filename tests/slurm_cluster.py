"""A real single-node SLURM cluster on localhost for tests, and Snakemake runs through it.

The fixture `slurm_cluster` is registered in conftest.py::

    @pytest.mark.slurm
    def test_something(slurm_cluster, tmp_path):
        (tmp_path / "Snakefile").write_text(...)
        result = slurm_cluster.run_snakemake(tmp_path, "all")  # --directory tmp_path

`slurm_cluster` (session scope) uses a SLURM that is already running, or, as root, starts one with
`tests/slurm/start_local_slurm.sh` (installs Debian's slurm-wlm and munge on first use). Without
root and without a running SLURM the tests are skipped, except when the environment variable
CI is true: there they fail, so that a CI run can never silently drop the SLURM tests.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_SCRIPT = ROOT / "tests" / "slurm" / "start_local_slurm.sh"
SLURM_PROFILE = ROOT / "profiles" / "slurm"
START_TIMEOUT_S = 600  # apt-get install on a fresh machine included
RUN_TIMEOUT_S = 900


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False
    )


def running_partitions() -> list[str] | None:
    """Partitions of a SLURM that answers with a usable node, or None."""
    if shutil.which("sinfo") is None:
        return None
    try:
        proc = _run(["sinfo", "-h", "-N", "-o", "%P|%t"])
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line.split("|") for line in proc.stdout.split() if "|" in line]
    if proc.returncode or not any(
        re.match(r"(idle|mix|alloc)", state) for _, state in rows
    ):
        return None
    return sorted({partition.rstrip("*") for partition, _ in rows})


@dataclass
class SlurmCluster:
    """What the tests need to know about the cluster, and how to run Snakemake through it."""

    partitions: list[str]
    cpu_partition: str
    gpu_partition: str
    start_output: str = ""
    start_seconds: float = 0.0
    profile: Path = field(default=SLURM_PROFILE)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a Snakemake run with the SLURM profile.

        The SLURM jobs inherit it (the plugin submits with --export=ALL), so they find this
        interpreter's virtual environment through PATH. No account: the test cluster has no
        accounting database; job states are polled with squeue for the same reason.
        """
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "/usr/bin:/bin")])
        env.update(
            WEIGHTSPACE_SLURM_ACCOUNT="",
            WEIGHTSPACE_CPU_PARTITION=self.cpu_partition,
            WEIGHTSPACE_GPU_PARTITION=self.gpu_partition,
            WEIGHTSPACE_SLURM_STATUS_COMMAND="squeue",
        )
        # Variables of an enclosing SLURM job would leak into the submissions.
        for key in [k for k in env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
            del env[key]
        env.update(extra)
        return env

    def snakemake_command(self, workdir: Path, *args: str, jobs: int = 4) -> list[str]:
        return [
            sys.executable,
            "-m",
            "snakemake",
            "--workflow-profile",
            str(self.profile),
            "--directory",
            str(workdir),
            "--jobs",
            str(jobs),
            # Poll soon after submission: test jobs take seconds, not the default 40 s.
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--slurm-keep-successful-logs",
            "--latency-wait",
            "10",
            "--retries",
            "0",
            *args,
        ]

    def run_snakemake(
        self,
        workdir: Path,
        *args: str,
        jobs: int = 4,
        timeout: float = RUN_TIMEOUT_S,
        check: bool = True,
        cwd: Path | None = None,
        **env: str,
    ) -> subprocess.CompletedProcess:
        """Run Snakemake with the SLURM profile in `workdir` (its --directory; also the current
        directory unless `cwd` is given). `env` adds environment variables. With `check`, a failed
        run fails the test with Snakemake's output and the SLURM job logs."""
        cmd = self.snakemake_command(Path(workdir), *args, jobs=jobs)
        proc = subprocess.run(
            cmd,
            cwd=cwd or workdir,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"snakemake on SLURM failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-12000:]}\n"
                f"--- SLURM logs ---\n{slurm_logs_tail(Path(workdir))}",
                pytrace=False,
            )
        return proc


def slurm_logs_tail(workdir: Path, lines: int = 40) -> str:
    out = []
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        text = log.read_text(errors="replace").splitlines()
        out.append(f"== {log}\n" + "\n".join(text[-lines:]))
    return "\n".join(out) or "(none)"


def scontrol_job(job_id: str | int) -> dict[str, str]:
    """`scontrol show job` as a dict (finished jobs stay visible for MinJobAge)."""
    proc = _run(["scontrol", "show", "job", "--oneliner", str(job_id)])
    if proc.returncode:
        raise RuntimeError(f"scontrol show job {job_id} failed: {proc.stderr.strip()}")
    fields = {}
    for token in proc.stdout.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def _not_available(reason: str):
    if _in_ci():
        pytest.fail(f"SLURM tests cannot run in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@functools.lru_cache(maxsize=None)
def _start() -> tuple[list[str] | None, str, float, str]:
    """Start (or find) the cluster once per process: partitions, script output, seconds, error."""
    t0 = time.monotonic()
    if os.geteuid() != 0:
        return running_partitions(), "", 0.0, ""
    try:
        proc = subprocess.run(
            ["bash", str(START_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return (
            None,
            str(exc.stderr or ""),
            time.monotonic() - t0,
            (f"{START_SCRIPT.name} did not finish within {START_TIMEOUT_S} s"),
        )
    output = proc.stdout + proc.stderr
    if proc.returncode:
        return (
            None,
            output,
            time.monotonic() - t0,
            (f"{START_SCRIPT.name} failed (exit {proc.returncode}):\n{output[-8000:]}"),
        )
    return running_partitions(), output, time.monotonic() - t0, ""


def get_slurm_cluster() -> SlurmCluster:
    """The running cluster; skips (or fails under CI=true) when there is none and cannot be one."""
    partitions, output, seconds, error = _start()
    if error:
        pytest.fail(
            error, pytrace=False
        )  # root, but SLURM could not be started: a real failure
    if partitions is None:
        _not_available(
            "no SLURM is running (sinfo shows no usable node) and starting one with "
            f"tests/slurm/start_local_slurm.sh needs root (running as uid {os.geteuid()}); "
            "run the tests as root, or start SLURM first"
        )
    cpu = os.environ.get("WEIGHTSPACE_CPU_PARTITION") or "cpu"
    gpu = os.environ.get("WEIGHTSPACE_GPU_PARTITION") or "gpu"
    missing = [p for p in (cpu, gpu) if p not in partitions]
    if missing:
        msg = (
            f"the running SLURM lacks partition(s) {missing} (it has {partitions}); set "
            "WEIGHTSPACE_CPU_PARTITION / WEIGHTSPACE_GPU_PARTITION to existing ones"
        )
        if os.geteuid() == 0:
            pytest.fail(msg, pytrace=False)
        _not_available(msg)
    return SlurmCluster(
        partitions=partitions,
        cpu_partition=cpu,
        gpu_partition=gpu,
        start_output=output,
        start_seconds=seconds,
    )
