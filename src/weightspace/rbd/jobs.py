"""How the random-bases experiments are cut into jobs and what each reads of the config.
Pure Python, read when the workflow is parsed (no torch).

rbd_table1: one job per (data set, network, method, chunk of seeds): several seeds per
job at quick scale, one run per GPU job at paper scale (``runs_per_job``).
"""

from __future__ import annotations

from collections.abc import Mapping

METHODS = ("sgd", "rbd", "fpd", "nes")
# keys of rbd every training job reads
SHARED = ("batch_size", "augment", "chunk", "max_steps_per_epoch")


def table1_jobs(config: Mapping) -> list[tuple[str, str, str, int]]:
    """(data set, network, method, chunk) of every rbd_table1 job."""
    table = config["rbd"]["table1"]
    chunks = -(-table["seeds"] // table["runs_per_job"])
    return [
        (dataset, network, method, chunk)
        for dataset in table["datasets"]
        for network in table["networks"]
        for method in table["methods"]
        for chunk in range(chunks)
    ]


def table1_job_config(
    config: Mapping, dataset: str, network: str, method: str, chunk: int
) -> dict:
    rbd = config["rbd"]
    table = rbd["table1"]
    per = table["runs_per_job"]
    seeds = list(range(table["seeds"]))[chunk * per : (chunk + 1) * per]
    job = {
        "seed": config["seed"],
        "device": config["device"],
        "dataset": dataset,
        "network": network,
        "method": method,
        "seeds": seeds,
        "epochs": table["epochs"],
        **{k: rbd[k] for k in SHARED},
    }
    if dataset != "mnist_subset":
        data = config["data"]
        job["data"] = {
            "root": data["root"],
            "verify_checksums": data["verify_checksums"],
        }
    if method != "sgd":
        job["d"] = table["d"]
    if method == "fpd":
        job["fpd_stale_coordinates"] = table["fpd_stale_coordinates"]
    if method == "nes":
        job["nes"] = dict(table["nes"])
    return job
