"""The mnist_pairs feature set: digit pairs on the frozen SmallCNN features and the
100-class last layer trained on them (weightspace.structured.pairs; NPZ layout:
weightspace.structured.features)."""

import numpy as np

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.structured.features import FeatureSet, check_predictions
from weightspace.structured.pairs import NAME, pair_feature_set

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    single = FeatureSet.from_arrays(np.load(sm.input.features))
    seed = derive_seed(job.config["seed"], "structured", NAME)
    fs = pair_feature_set(single, job.config["structured.pairs"], seed)
    check = check_predictions(fs, max_mismatch=0.002)
    with atomic_path(sm.output.npz) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **fs.arrays())
    job.record.seeds[NAME] = seed
    job.record.metrics.update(shape=list(fs.shape), **check)
    job.log.info(
        "pairs: features %s, last layer %s, %s",
        fs.x_train.shape,
        fs.weight.shape,
        check,
    )
