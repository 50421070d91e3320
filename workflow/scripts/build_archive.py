"""Pack the run's results with a snapshot of the code and config into a verifiable archive."""

from pathlib import Path

from weightspace.archive import create, verify
from weightspace.pipeline.job import script_job

with script_job(snakemake) as job:  # noqa: F821 (injected by Snakemake)
    repo = Path(snakemake.params.repo)  # noqa: F821
    extra = [repo / p for p in snakemake.params.snapshot if (repo / p).exists()]  # noqa: F821
    out = create(snakemake.params.run_dir, snakemake.output[0], extra=extra, repo_root=repo)  # noqa: F821
    report = verify(out)
    if not report.ok:
        raise RuntimeError(f"the archive {out} does not verify: {report.summary()}")
    job.log.info("archive %s: %s", out, report.summary())
    job.record.metrics["files"] = report.n_files
