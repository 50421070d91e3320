"""What every workflow script does first: logging, threads, device, config and its run record.

    with script_job(snakemake, seeds={"base": ...}) as job:
        result = science_function(**job.config[...], generator=...)
        job.record.metrics["ks"] = ...

The record (JSON) goes to the rule's `record` output if it declares one, else beside the first
output as `<stem>.record.json`. It is written only when the block succeeds; Snakemake removes the
outputs of a failed job, so nothing half-written stays behind. The job log is appended to, so the
log of a resumed job keeps what the killed attempt wrote.

Long jobs resume through one policy, `job.checkpoint(seed=...)` (see `Checkpoint`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightspace.provenance.atomic import atomic_torch_save, canonical_json
from weightspace.provenance.runrecord import RunRecord, from_snakemake

SET_ASIDE_SUFFIX = ".set-aside"


class Checkpoint:
    """The resumable state of one job, in a file beside its outputs.

    The file name carries a fingerprint of everything the job's result depends on (rule,
    wildcards, config slice, code hash and the identity the script passes, e.g. its seed). A
    checkpoint with another fingerprint, left by a run with other settings or code, is never
    resumed and never fatal: it is set aside (renamed ``*.set-aside``) with a log line. The
    checkpoint is deleted when the job succeeds.
    """

    def __init__(self, base: str | os.PathLike, fingerprint: str, log: logging.Logger):
        base = Path(base)
        self.base = base
        self.fingerprint = fingerprint
        self.path = base.with_name(f"{base.stem}.{fingerprint}{base.suffix}")
        self.log = log
        self._set_aside_foreign()

    def _foreign(self) -> list[Path]:
        if not self.base.parent.is_dir():
            return []
        pattern = f"{self.base.stem}.*{self.base.suffix}"
        found = [p for p in self.base.parent.glob(pattern) if p != self.path]
        if self.base.exists():  # an unfingerprinted checkpoint of an older layout
            found.append(self.base)
        return sorted(p for p in found if p.is_file())

    def _set_aside(self, path: Path, why: str) -> None:
        target = path.with_name(path.name + SET_ASIDE_SUFFIX)
        os.replace(path, target)
        self.log.warning(
            "set aside checkpoint %s (%s) as %s; starting afresh", path, why, target
        )

    def _set_aside_foreign(self) -> None:
        for path in self._foreign():
            self._set_aside(path, "written with other settings, code or seed")

    def load(self) -> Any | None:
        """The saved payload, or None when there is none (or it cannot be read)."""
        if not self.path.exists():
            return None
        import torch

        try:
            payload = torch.load(self.path, weights_only=False, map_location="cpu")
        except Exception as error:  # unreadable: keep it for inspection, start afresh
            self._set_aside(self.path, f"unreadable: {type(error).__name__}: {error}")
            return None
        self.log.info("resuming from checkpoint %s", self.path)
        return payload

    def save(self, payload: Any) -> None:
        """Write the payload atomically (a killed job leaves the previous checkpoint)."""
        atomic_torch_save(payload, self.path)

    def remove(self) -> None:
        if self.path.exists():
            os.remove(self.path)


@dataclass
class Job:
    config: dict
    log: logging.Logger
    record: RunRecord
    device: str
    threads: int
    seeds: dict = field(default_factory=dict)
    snakemake: Any = None
    checkpoints: list = field(default_factory=list)

    def checkpoint(self, **identity) -> Checkpoint:
        """The job's checkpoint at the rule's `checkpoint` param, fingerprinted by the rule,
        its wildcards, config slice and code hash and `identity` (e.g. seed=...)."""
        sm = self.snakemake
        if "checkpoint" not in sm.params.keys():
            raise ValueError(f"rule {sm.rule} declares no `checkpoint` param")
        params = dict(sm.params.items())
        what = {
            "rule": sm.rule,
            "wildcards": dict(sm.wildcards.items()),
            "config": self.config,
            "code": params.get("code"),
            "identity": identity,
        }
        digest = hashlib.sha256(canonical_json(what).encode()).hexdigest()[:16]
        ckpt = Checkpoint(sm.params.checkpoint, digest, self.log)
        self.checkpoints.append(ckpt)
        return ckpt


def record_path(snakemake) -> Path:
    outputs = snakemake.output
    if "record" in outputs.keys():
        return Path(outputs.record)
    first = Path(outputs[0])
    return first.with_name(first.stem + ".record.json")


def _logger(snakemake) -> logging.Logger:
    log = logging.getLogger(f"weightspace.{snakemake.rule}")
    log.setLevel(logging.INFO)
    log.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    targets = [logging.StreamHandler(sys.stderr)]
    if len(snakemake.log):
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        targets.append(logging.FileHandler(snakemake.log[0], mode="a"))
    for handler in targets:
        handler.setFormatter(fmt)
        log.addHandler(handler)
    log.propagate = False
    return log


def _params_config(snakemake) -> dict:
    params = snakemake.params
    if "config" in params.keys():
        return json.loads(params.config)
    return {}


def gpu_lock_dir() -> Path:
    """Where GPU jobs on one machine agree on which GPU each uses (file locks)."""
    default = Path(tempfile.gettempdir()) / "weightspace-gpu-locks"
    return Path(os.environ.get("WEIGHTSPACE_GPU_LOCK_DIR", default))


def _device(spec: str, stack: contextlib.ExitStack) -> str:
    """Resolve the device; a bare `cuda` takes a free GPU so that concurrent jobs get distinct
    devices (Snakemake's `gpu` resource limits how many run, not which GPU each uses)."""
    if spec == "cpu":
        return (
            "cpu"  # without importing torch: plot and table jobs start a second faster
        )
    import torch

    from weightspace.training.devices import acquire_gpu, resolve_device

    device = resolve_device(spec)
    if device.type == "cuda" and device.index is None:
        index = stack.enter_context(acquire_gpu(gpu_lock_dir()))
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    return str(device)


def _set_threads(threads: int) -> None:
    """The job's thread count: torch's, if the script has imported it, else through the
    environment torch reads when it is first imported (so a job that never needs torch
    does not pay for importing it)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        from weightspace.training.devices import set_threads

        set_threads(threads)


@contextlib.contextmanager
def script_job(snakemake, seeds: dict | None = None, device: str | None = None):
    """Set up a workflow script and write its run record when the block succeeds.

    The device is `device`, else the `device` key of the rule's config slice, else the CPU.
    """
    log = _logger(snakemake)
    threads = int(getattr(snakemake, "threads", 1) or 1)
    _set_threads(threads)
    config = _params_config(snakemake)
    stack = contextlib.ExitStack()
    resolved = _device(device or config.get("device", "cpu"), stack)
    log.info(
        "rule %s, wildcards %s, threads %d, device %s",
        snakemake.rule,
        dict(snakemake.wildcards.items()),
        threads,
        resolved,
    )
    record = from_snakemake(
        snakemake, record_path(snakemake), config_slice=config, seeds=seeds or {}
    )
    record.set_device(resolved, threads)
    job = Job(
        config=config,
        log=log,
        record=record,
        device=resolved,
        threads=threads,
        seeds=seeds or {},
        snakemake=snakemake,
    )
    with stack, record:
        yield job
    for ckpt in job.checkpoints:
        ckpt.remove()
    log.info("done; run record %s", record_path(snakemake))
