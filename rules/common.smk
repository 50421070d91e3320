# Helpers only: config validation and access, the target registry, code hashes, paths.
import os
from pathlib import Path

from weightspace.pipeline.codehash import source_hash
from weightspace.pipeline.config import config_slice_json, validate_config
from weightspace.provenance.atomic import canonical_json
from weightspace.pipeline.registry import load_registry

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
    missing under data.root and may not be downloaded. Imported here: torchvision takes
    seconds to import, and only paper-scale data sets need it."""
    from weightspace.data.torchvision_sets import check_dataset_available

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


# --- structured (Kissel & Diepold): feature sets, names, the paper-scale data check ----------
from weightspace.pipeline.config import config_slice

SSS = config["structured"]
SSS_DIR = f"{RUN}/structured"
# what the compute jobs run (not summaries.py, which only the table and plot rules use)
SSS_CODE = code(
    *(
        f"weightspace.structured.{m}"
        for m in ("approximation", "sss", "low_rank", "psm", "displacement")
    ),
    *(
        f"weightspace.structured.{m}"
        for m in ("hierarchical", "layers", "structured_layers", "test_matrices")
    ),
    "weightspace.structured.experiments",
    "weightspace.structured.features",
)
SSS_SHARED = ("seed", "structured.psm_iterations", "structured.sss_esann_off_by_one")
SSS_SHARED += ("structured.sss_exact_count",)


# weightspace.structured.test_matrices.FAMILIES (a test checks they agree; no torch import here)
SSS_FAMILIES = ["orthogonal", "random", "low_rank", "linear_sv", "sss", "psm"]
SSS_FAMILIES += ["hierarchical", "ldr"]
SSS_SPEED_SHAPES = {s["name"]: s for s in SSS["speed"]["shapes"]}
SSS_APPROX_METHODS = {m["name"]: m for m in SSS["approximation"]["methods"]}
SSS_TABLE_METHODS = {m["name"]: m for m in SSS["finetune_table"]["methods"]}
for _what, _names, _items in (
    ("speed.shapes", SSS_SPEED_SHAPES, SSS["speed"]["shapes"]),
    ("approximation.methods", SSS_APPROX_METHODS, SSS["approximation"]["methods"]),
    ("finetune_table.methods", SSS_TABLE_METHODS, SSS["finetune_table"]["methods"]),
):
    if len(_names) != len(_items):
        raise WorkflowError(f"structured.{_what}: names must be unique")


def sss_speed_config(wildcards):
    """One shape's slice: changing another shape reruns nothing here."""
    speed = {k: v for k, v in SSS["speed"].items() if k != "shapes"}
    return canonical_json(
        {"seed": config["seed"], "shape": SSS_SPEED_SHAPES[wildcards.shape], **speed}
    )


def sss_approximation_config(wildcards):
    """One approximator's slice of sss_fig_approximation."""
    return canonical_json(
        {
            **config_slice(config, SSS_SHARED),
            "shares": SSS["approximation"]["shares"],
            "method": SSS_APPROX_METHODS[wildcards.method],
        }
    )


def sss_table_config(wildcards):
    """One method's slice of sss_table_finetune."""
    table = {k: v for k, v in SSS["finetune_table"].items() if k != "methods"}
    table["features"] = wildcards.features
    return canonical_json(
        {
            **config_slice(config, SSS_SHARED),
            "finetune_table": table,
            "method": SSS_TABLE_METHODS[wildcards.method],
        }
    )


def sss_table_outputs():
    return [
        f"{SSS_DIR}/finetune_table/{m}/{f}.json"
        for f in SSS["finetune_table"]["features"]
        for m in SSS_TABLE_METHODS
    ]


def sss_features_path(name):
    """Feature set `small_cnn` (quick) or `<arch>/<subset>` (pretrained, paper scale) as NPZ."""
    return f"{SSS_DIR}/features/{name}.npz"


def sss_share_label(share):
    return f"{share:g}"


def sss_class_list(subset):
    for entry in SSS["pretrained"]["class_lists"]:
        if entry["name"] == subset:
            return entry["file"]
    known = ", ".join(e["name"] for e in SSS["pretrained"]["class_lists"])
    raise WorkflowError(
        f"class subset {subset!r} is not in structured.pretrained.class_lists ({known})"
    )


def sss_pretrained_available(wildcards):
    """Input function: stops the DAG before any job when the ImageNet root, the class list or the
    pretrained weights are missing. Skipped in dry runs, so that the paper plan can be shown.
    """
    if workflow.dryrun:
        return []
    from weightspace.structured.features import check_pretrained_inputs

    try:
        check_pretrained_inputs(
            wildcards.arch,
            SSS["pretrained"]["weights"],
            config["data"]["imagenet_root"],
            sss_class_list(wildcards.subset),
            config["data"]["torch_home"],
            SSS["pretrained"]["download"],
        )
    except (OSError, ValueError) as error:
        raise WorkflowError(
            f"structured features {wildcards.arch}/{wildcards.subset}: {error}"
        )
    return []


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


# --- relu_fig_star, relu_fig_setups, relu_table_setups, relu_fig_examples ----------------
# Paths, job lists and per-job config slices of the star experiment, the setups grid and the
# example figure, checked before any job runs.
STAR = config["relu"]["star"]
STAR_DIR = f"{RUN}/relu/star"
SETUPS = config["relu"]["setups"]
SETUPS_DIR = f"{RUN}/relu/setups"
EXAMPLES = config["relu"]["examples"]
EXAMPLES_DIR = f"{RUN}/relu/examples"
# The star nets and the setups grid vectorise over networks: one GPU per job where allowed.
RELU_GPUS = 0 if config["device"] == "cpu" else 1
# What a setups job depends on: everything but the list of distributions (one job each) and
# the bias inits the figure draws.
SETUPS_JOB_KEYS = [k for k in SETUPS if k not in ("distributions", "figure_bias_inits")]


def _check_relu_config():
    problems = []
    widths = [w["width"] for w in STAR["widths"]]
    if len(set(widths)) != len(widths):
        problems.append(
            "relu.star.widths: each width once (give a width's nets and chunk_nets in one entry)"
        )
    if STAR["stage_epochs"] > STAR["epochs"]:
        problems.append("relu.star.stage_epochs must not exceed relu.star.epochs")
    unknown = set(SETUPS["figure_bias_inits"]) - set(SETUPS["bias_inits"])
    if unknown:
        problems.append(
            f"relu.setups.figure_bias_inits {sorted(unknown)} are not in relu.setups.bias_inits"
        )
    if "zero" not in SETUPS["figure_bias_inits"]:
        problems.append(
            "relu.setups.figure_bias_inits must contain zero (the figure's baseline)"
        )
    if not any(d.startswith("rad-distr-") for d in SETUPS["distributions"]):
        problems.append(
            "relu.setups.distributions needs at least one rad-distr-<d> (the figure's x axis)"
        )
    for d in SETUPS["distributions"]:
        dim = 1 if d == "ex-distr" else int(d.rsplit("-", 1)[1])
        if (SETUPS["train_per_dim"] * dim) % SETUPS["batch_size"]:
            problems.append(
                f"relu.setups: n_train = train_per_dim * d = {SETUPS['train_per_dim'] * dim} "
                f"for {d} is not a multiple of batch_size = {SETUPS['batch_size']}"
            )
    if "ex-distr" not in SETUPS["distributions"]:
        problems.append(
            "relu.setups.distributions must contain ex-distr (relu_fig_examples retrains it)"
        )
    for c in EXAMPLES["configs"]:
        if (
            c["parameterisation"] not in SETUPS["parameterisations"]
            or c["optimizer"] not in SETUPS["optimizers"]
            or c["bias_init"] not in SETUPS["bias_inits"]
        ):
            problems.append(
                f"relu.examples.configs entry {c} is not part of the relu.setups grid"
            )
    if EXAMPLES["reference"]["width"] % 2:
        problems.append("relu.examples.reference.width must be even")
    if problems:
        raise WorkflowError("invalid relu config:\n  " + "\n  ".join(problems))


_check_relu_config()


def star_chunks():
    """[(width, chunk, nets)] of every star job."""
    jobs = []
    for entry in STAR["widths"]:
        n, size = entry["nets"], entry["chunk_nets"]
        for chunk in range(-(-n // size)):
            jobs.append((entry["width"], chunk, min(size, n - chunk * size)))
    return jobs


def star_chunk_outputs():
    return [f"{STAR_DIR}/m{w}/chunk{c}.json" for w, c, _ in star_chunks()]


def star_job_config(wildcards):
    """Only what one chunk depends on: adding a width reruns nothing here."""
    width, chunk = int(wildcards.width), int(wildcards.chunk)
    nets = {(w, c): n for w, c, n in star_chunks()}
    if (width, chunk) not in nets:
        raise WorkflowError(
            f"relu_star_chunk: no chunk {chunk} of width {width} in relu.star.widths"
        )
    keys = ("rays", "delta", "epochs", "stage_epochs", "star_double_step", "dtype")
    return canonical_json(
        {
            "seed": config["seed"],
            "device": config["device"],
            "nets": nets[(width, chunk)],
            **{k: STAR[k] for k in keys},
        }
    )


def setups_job_outputs():
    return expand(f"{SETUPS_DIR}/{{dist}}.json", dist=SETUPS["distributions"])


def setups_job_config(wildcards):
    """Only what one distribution's job depends on."""
    return canonical_json(
        {
            "seed": config["seed"],
            "device": config["device"],
            **{k: SETUPS[k] for k in SETUPS_JOB_KEYS},
        }
    )


def examples_job_config(wildcards):
    """The examples and the setups protocol they retrain with (not the grid's other keys)."""
    protocol = (
        "width",
        "batch_size",
        "valid_every",
        "train_per_dim",
        "n_valid",
        "n_test",
        "best_test_uses_valid",
        "dtype",
    )
    return canonical_json(
        {
            "seed": config["seed"],
            "examples": EXAMPLES,
            "setups": {k: SETUPS[k] for k in protocol},
        }
    )
