# Helpers only: config validation and access, the target registry, code hashes, paths.
import os
from pathlib import Path

from weightspace.pipeline.codehash import source_hash
from weightspace.pipeline.config import config_slice_json, validate_config
from weightspace.provenance.atomic import canonical_json
from weightspace.pipeline.registry import load_registry
from weightspace.data.torchvision_sets import check_dataset_available

validate_config(config)

REGISTRY = load_registry()
RUN = f"{config['results_dir']}/{config['run_name']}"
REPO = workflow.basedir


wildcard_constraints:
    chunk=r"\d+",


def cfg(*keys):
    """Canonical JSON of the named config slices (dotted keys): a rule param, so that a
    change of exactly these keys reruns the rule and nothing else."""
    return config_slice_json(config, keys)


def code(*modules):
    """Hash of the sources of the named weightspace modules: a rule param, so that editing
    the science code a rule uses reruns it (Snakemake does not track src/ by itself)."""
    return source_hash(SRC, modules)


def logfile(rule, stem="job"):
    return f"{RUN}/logs/{rule}/{stem}.log"


def benchfile(rule, stem="job"):
    return f"{RUN}/benchmarks/{rule}/{stem}.tsv"


def torchvision_available(wildcards):
    """Input function: stops the DAG (before any job runs) when a torchvision data set is
    missing under data.root and may not be downloaded."""
    check_dataset_available(
        wildcards.dataset, config["data"]["root"], config["data"]["download"]
    )
    return []


def run_dir_of(wildcards, output):
    """results/<run_name>/ derived from a rule's output under results/<run_name>/<folder>/."""
    return str(Path(output[0]).parent.parent)


def gpu_resources(n=1, **other):
    """Resources of a job that wants `n` GPUs: the `gpu` count and, on SLURM, the GPU partition
    (WEIGHTSPACE_GPU_PARTITION, default `gpu`). n == 0 gives an ordinary CPU job.
    See profiles/README.md."""
    if not n:
        return other
    partition = os.environ.get("WEIGHTSPACE_GPU_PARTITION") or "gpu"
    return {"gpu": n, "slurm_partition": partition, **other}


# --- relu_fig_mc: chunks of the 1-D Monte Carlo ------------------------------------------
MC = config["relu"]["mc"]
MC_VARIANTS = {v["name"]: v for v in MC["variants"]}
if len(MC_VARIANTS) != len(MC["variants"]):
    raise WorkflowError("relu.mc.variants: variant names must be unique")
MC_CHUNKS = -(-MC["runs"] // MC["chunk_runs"])
MC_DIR = f"{RUN}/relu/mc"
# The Monte Carlo vectorises over networks: one GPU per job where the config allows one.
MC_GPUS = 0 if config["device"] == "cpu" else 1


def mc_offset_label(offset):
    return f"{offset:g}"


def mc_chunk_outputs():
    return expand(
        f"{MC_DIR}/{{variant}}/offset{{offset}}/m{{width}}/chunk{{chunk}}.json",
        variant=MC_VARIANTS,
        offset=[mc_offset_label(o) for o in MC["offsets"]],
        width=MC["widths"],
        chunk=range(MC_CHUNKS),
    )


def mc_job_config(wildcards):
    """Only what one chunk depends on: changing another variant reruns nothing here."""
    chunk = int(wildcards.chunk)
    return canonical_json(
        {
            "seed": config["seed"],
            "device": config["device"],
            "variant": MC_VARIANTS[wildcards.variant],
            "runs": min(MC["chunk_runs"], MC["runs"] - chunk * MC["chunk_runs"]),
            "checkpoint_every": MC["checkpoint_every"],
        }
    )
