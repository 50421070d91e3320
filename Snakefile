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


configfile: "config/quick.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/relu.smk"
include: "rules/teleport.smk"
include: "rules/random_bases.smk"
include: "rules/credit.smk"
include: "rules/structured.smk"
include: "rules/figures.smk"
include: "rules/provenance.smk"


rule all:
    default_target: True
    input:
        ALL_OUTPUTS,
