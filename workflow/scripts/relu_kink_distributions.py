"""Sample kink distances |b|/‖w‖ per input dimension and tabulate their CDFs."""

import pandas as pd

from weightspace.data.seeds import derive_seed
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path, atomic_write_json
from weightspace.relu.kinks import kink_distance_table

with script_job(snakemake) as job:  # noqa: F821 (injected by Snakemake)
    cfg = job.config["relu.kink_distributions"]
    base = job.config["seed"]
    seeds = {d: derive_seed(base, "relu_kink_distributions", d) for d in cfg["dims"]}
    job.record.seeds.update({f"d={d}": s for d, s in seeds.items()})
    table = kink_distance_table(
        cfg["dims"], cfg["samples"], cfg["grid_points"], seeds.__getitem__
    )

    frame = pd.DataFrame(
        {"distance": table["grid"], "uniform_0_sqrt3": table["reference"]}
    )
    for d in cfg["dims"]:
        frame[f"d={d}"] = table["cdf"][d]
        job.log.info(
            "d=%d: KS distance to U(0, sqrt 3) = %.4f", d, table["ks_to_uniform"][d]
        )
    with atomic_path(snakemake.output.csv) as tmp:  # noqa: F821
        frame.to_csv(tmp, index=False, float_format="%.6g")
    summary = {
        "dims": cfg["dims"],
        "samples": cfg["samples"],
        "ks_to_uniform": {str(d): table["ks_to_uniform"][d] for d in cfg["dims"]},
        "median": {str(d): table["median"][d] for d in cfg["dims"]},
        "dkw_epsilon": table["dkw_epsilon"],
    }
    atomic_write_json(snakemake.output.summary, summary)  # noqa: F821
    job.record.metrics.update(summary)
