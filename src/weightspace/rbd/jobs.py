"""How the random-bases experiments are cut into runs and jobs, and what each job reads
of the config. Pure Python, read when the workflow is parsed (no torch).

Every experiment is a list of runs; a run is one network trained once by one method
with one number of directions, one compartment setting and one number of workers.
Runs are cut into jobs of ``runs_per_job`` (several per job at quick scale, one per GPU
job at paper scale); a job is named ``chunk<i>``. rbd_fig_correlation trains nothing:
it reads the cosines that Table 1's RBD and FPD runs record.

- ``table1``: data sets x networks x methods x seeds at d;
- ``fig_dimensions``: methods x numbers of directions x seeds, one network and data set;
- ``fig_compartments``: networks x compartment settings x seeds (RBD);
- ``table_distributed``: numbers of workers x seeds (RBD, in-process workers).
"""

from __future__ import annotations

from collections.abc import Mapping

METHODS = ("sgd", "rbd", "fpd", "nes")
EXPERIMENTS = ("table1", "fig_dimensions", "fig_compartments", "table_distributed")
# keys of rbd every training job reads
SHARED = ("batch_size", "augment", "chunk", "generator", "max_steps_per_epoch")
SINGLE = {"name": "single", "weights_per_compartment": 1e10, "split_dimensions": False}


def _run(dataset, network, method, d, seed, setting=SINGLE, workers=1) -> dict:
    return {
        "dataset": dataset,
        "network": network,
        "method": method,
        "d": None if method == "sgd" else d,
        "compartments": setting["name"],
        "weights_per_compartment": setting["weights_per_compartment"],
        "split_dimensions": setting["split_dimensions"],
        "workers": workers,
        "seed_index": seed,
    }


def experiment_runs(config: Mapping, experiment: str) -> list[dict]:
    """Every run of ``experiment``, in a fixed order."""
    e = config["rbd"][experiment]
    seeds = range(e["seeds"])
    if experiment == "table1":
        return [
            _run(dataset, network, method, e["d"], s)
            for dataset in e["datasets"]
            for network in e["networks"]
            for method in e["methods"]
            for s in seeds
        ]
    if experiment == "fig_dimensions":
        return [
            _run(e["dataset"], e["network"], method, d, s)
            for method in e["methods"]
            for d in e["dims"]
            for s in seeds
        ]
    if experiment == "fig_compartments":
        return [
            _run(e["dataset"], network, "rbd", e["d"], s, setting)
            for network in e["networks"]
            for setting in e["settings"]
            for s in seeds
        ]
    if experiment == "table_distributed":
        return [
            _run(e["dataset"], e["network"], "rbd", e["d"], s, workers=w)
            for w in e["workers"]
            for s in seeds
        ]
    raise ValueError(f"unknown rbd experiment {experiment!r}; one of {EXPERIMENTS}")


def experiment_jobs(config: Mapping, experiment: str) -> list[str]:
    """The job names of ``experiment``: chunk0, chunk1, ..."""
    per = config["rbd"][experiment]["runs_per_job"]
    count = -(-len(experiment_runs(config, experiment)) // per)
    return [f"chunk{i}" for i in range(count)]


def job_results(config: Mapping, experiment: str, directory: str) -> list[str]:
    """The result files of ``experiment``'s jobs under ``directory``."""
    return [
        f"{directory}/{experiment}/{job}.json"
        for job in experiment_jobs(config, experiment)
    ]


def job_config(config: Mapping, experiment: str, job: str) -> dict:
    """What one job reads: its runs and the settings they share."""
    rbd = config["rbd"]
    e = rbd[experiment]
    index = int(job.removeprefix("chunk"))
    per = e["runs_per_job"]
    runs = experiment_runs(config, experiment)[index * per : (index + 1) * per]
    if not runs:
        raise ValueError(f"rbd.{experiment} has no job {job!r}")
    out = {
        "seed": config["seed"],
        "device": config["device"],
        "experiment": experiment,
        "epochs": e["epochs"],
        "runs": runs,
        "fpd_stale_coordinates": e.get("fpd_stale_coordinates", False),
        **{k: rbd[k] for k in SHARED},
    }
    if any(r["method"] == "nes" for r in runs):
        out["nes"] = dict(e["nes"])
    if any(r["dataset"] != "mnist_subset" for r in runs):
        data = config["data"]
        out["data"] = {
            "root": data["root"],
            "verify_checksums": data["verify_checksums"],
        }
    return out


def datasets(config: Mapping, experiment: str) -> list[str]:
    """The data sets the runs of ``experiment`` read."""
    return sorted({r["dataset"] for r in experiment_runs(config, experiment)})
