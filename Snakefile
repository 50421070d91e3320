# weightspace: one workflow for the figures and tables of five papers on weight space.
# Quick scale by default; `--configfile config/paper.yaml` for paper scale. See README.md.
import os
import sys

from snakemake.utils import min_version

min_version("9.19")

# The workflow always runs this checkout's own library (also without installing it), and the
# code hashes in rule params are taken from the same files.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        [SRC] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
)

from weightspace.pipeline.config import ConfigError, resolve_config

# The config: each --configfile (default config/quick.yaml) is complete or says which file it
# `extends`; --config key=value applies last. Checked in full before any job (config/README.md).
CONFIG_DIR = os.path.join(workflow.basedir, "config")
try:
    _resolved = resolve_config(
        [str(p) for p in workflow.overwrite_configfiles]
        or [os.path.join(CONFIG_DIR, "quick.yaml")],
        dict(workflow.config_settings.config),
        CONFIG_DIR,
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None
config.clear()
config.update(_resolved)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/teleport.smk"
include: "rules/rbd.smk"
include: "rules/credit.smk"
include: "rules/relu.smk"
include: "rules/structured.smk"
include: "rules/figures.smk"
include: "rules/provenance.smk"


attach_code_hashes()


rule all:
    default_target: True
    input:
        ALL_OUTPUTS,
