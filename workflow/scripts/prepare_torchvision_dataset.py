"""Make a torchvision data set available under data.root (download if allowed) and record
checksums of its files."""

from weightspace.data import file_checksums, torchvision_dataset
from weightspace.pipeline.job import script_job

with script_job(snakemake) as job:  # noqa: F821 (injected by Snakemake)
    name = snakemake.wildcards.dataset  # noqa: F821
    root, download = job.config["data.root"], job.config["data.download"]
    verify = job.config["data.verify_checksums"]
    for part, train in (("train", True), ("test", False)):
        dataset = torchvision_dataset(
            name, root, train=train, download=download, verify_checksums=verify
        )
        job.record.metrics[part] = len(dataset)
        job.record.data.update(file_checksums(dataset.files_used, relative_to=root))
        job.log.info("%s %s: %d examples", name, part, len(dataset))
