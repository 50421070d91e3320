"""Pack the run's results with a snapshot of the code and config into a verifiable archive."""

import json
from pathlib import Path

from weightspace.archive import create, verify
from weightspace.pipeline.job import script_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    repo = Path(sm.params.repo)
    extra = [repo / p for p in sm.params.snapshot if (repo / p).exists()]
    out = create(
        sm.params.run_dir,
        sm.output[0],
        extra=extra,
        repo_root=repo,
        workflow=json.loads(sm.params.invocation),
    )
    report = verify(out)
    if not report.ok:
        raise RuntimeError(f"the archive {out} does not verify: {report.summary()}")
    job.log.info("archive %s: %s", out, report.summary())
    job.log.info(
        "manifest sha256 (publish it to pin the archive): %s", report.manifest_sha256
    )
    job.record.metrics["files"] = report.n_files
