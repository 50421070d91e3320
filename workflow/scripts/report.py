"""The run's HTML report (figures, captions, provenance of every job)."""

from pathlib import Path

from weightspace.pipeline.job import script_job
from weightspace.pipeline.registry import load_registry
from weightspace.pipeline.report import build_report
from weightspace.provenance.atomic import atomic_write_text

sm = snakemake  # noqa: F821 (injected by Snakemake)
# The captions are rendered against the whole config; the report itself runs on the CPU.
with script_job(sm, device="cpu") as job:
    captions = Path(sm.scriptdir).parent / "report"
    text = build_report(sm.params.run_dir, load_registry(), job.config, captions)
    atomic_write_text(sm.output.html, text)
