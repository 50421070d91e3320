"""The run's HTML report (figures, captions, provenance of every job)."""

from pathlib import Path

from weightspace.pipeline.job import script_job
from weightspace.pipeline.registry import load_registry
from weightspace.pipeline.report import build_report
from weightspace.provenance.atomic import atomic_write_text

with script_job(snakemake) as job:  # noqa: F821 (injected by Snakemake)
    captions = Path(snakemake.scriptdir).parent / "report"  # noqa: F821
    text = build_report(snakemake.params.run_dir, load_registry(), snakemake.config, captions)  # noqa: F821
    atomic_write_text(snakemake.output.html, text)  # noqa: F821
