"""What every workflow script does first: logging, threads, device, config and its run record.

    with script_job(snakemake, seeds={"base": ...}) as job:
        result = science_function(**job.config[...], generator=...)
        job.record.metrics["ks"] = ...

The record (JSON) goes to the rule's `record` output if it declares one, else beside the first
output as `<stem>.record.json`. It is written only when the block succeeds; Snakemake removes the
outputs of a failed job, so nothing half-written stays behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from weightspace.provenance.runrecord import RunRecord, from_snakemake


@dataclass
class Job:
    config: dict
    log: logging.Logger
    record: RunRecord
    device: str
    threads: int
    seeds: dict = field(default_factory=dict)


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
        targets.append(logging.FileHandler(snakemake.log[0], mode="w"))
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
    import torch

    from weightspace.training.devices import acquire_gpu, resolve_device

    device = resolve_device(spec)
    if device.type == "cuda" and device.index is None:
        index = stack.enter_context(acquire_gpu(gpu_lock_dir()))
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    return str(device)


@contextlib.contextmanager
def script_job(snakemake, seeds: dict | None = None, device: str | None = None):
    """Set up a workflow script and write its run record when the block succeeds.

    The device is `device`, else the `device` key of the rule's config slice, else the CPU.
    """
    from weightspace.training.devices import set_threads

    log = _logger(snakemake)
    threads = int(getattr(snakemake, "threads", 1) or 1)
    set_threads(threads)
    config = _params_config(snakemake)
    stack = contextlib.ExitStack()
    resolved = _device(device or config.get("device", "cpu"), stack)
    log.info("rule %s, wildcards %s, threads %d, device %s", snakemake.rule,
             dict(snakemake.wildcards.items()), threads, resolved)
    record = from_snakemake(snakemake, record_path(snakemake), config_slice=config, seeds=seeds or {})
    record.set_device(resolved, threads)
    with stack, record:
        yield Job(config=config, log=log, record=record, device=resolved, threads=threads,
                  seeds=seeds or {})
    log.info("done; run record %s", record_path(snakemake))
