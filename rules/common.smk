# What every paper's rules use: the config (resolved and checked in the Snakefile), the target
# registry, run paths, config slices as params, automatic code hashes, log and benchmark paths,
# GPU resources. A paper's own helpers stand at the top of its rules file.
import os
from pathlib import Path

from weightspace.pipeline.codehash import script_hash
from weightspace.pipeline.config import config_slice, config_slice_json
from weightspace.pipeline.registry import load_registry
from weightspace.provenance.atomic import canonical_json

REGISTRY = load_registry()
RUN = f"{config['results_dir']}/{config['run_name']}"
REPO = workflow.basedir
# A compute job that vectorises over networks takes one GPU where the config allows one.
JOB_GPUS = 0 if config["device"] == "cpu" else 1


wildcard_constraints:
    chunk=r"\d+",


def cfg(*keys):
    """Canonical JSON of the named config slices (dotted keys): a rule param, so that a
    change of exactly these keys reruns the rule and nothing else."""
    return config_slice_json(config, keys)


def attach_code_hashes():
    """Give the jobs of each script rule a `code` param, the hash of its script's import
    closure within weightspace (weightspace.pipeline.codehash), so that editing any module
    a script uses, and nothing else, reruns its jobs. Scripts are named after their rules.
    """
    for r in [r for r in workflow.rules if r.is_script]:
        script = Path(r.snakefile).parent / r.script
        if script.name != f"{r.name}.py":
            raise WorkflowError(
                f"{r.name} runs {script.name}; name the script {r.name}.py"
            )
        if "code" in r.params.keys():
            raise WorkflowError(
                f"{r.name} sets a `code` param; remove it, code hashes are automatic"
            )
        r.set_params(code=script_hash(script, SRC))


def logfile(rule, stem="job"):
    return f"{RUN}/logs/{rule}/{stem}.log"


def benchfile(rule, stem="job"):
    return f"{RUN}/benchmarks/{rule}/{stem}.tsv"


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
