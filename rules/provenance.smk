# The HTML report, and the verifiable reproducibility archive of the run.
from weightspace.archive import snakemake_invocation

REPORT = f"{RUN}/report/report.html"
ARCHIVE = f"{RUN}/archive/{config['run_name']}.tar.gz"
CODE_SNAPSHOT = [
    "Snakefile",
    "rules",
    "workflow",
    "config",
    "profiles",
    "envs",
    "src",
    "pyproject.toml",
    "Makefile",
    "README.md",
]


rule report:
    input:
        ALL_OUTPUTS,
    output:
        html=REPORT,
    log:
        logfile("report"),
    benchmark:
        benchfile("report")
    localrule: True
    conda:
        "../envs/weightspace.yaml"
    params:
        # the captions are rendered against the whole config
        config=canonical_json(config),
        run_dir=run_dir_of,
    script:
        "../workflow/scripts/report.py"


rule archive:
    input:
        ALL_OUTPUTS,
        REPORT,
    output:
        ARCHIVE,
    log:
        logfile("archive"),
    benchmark:
        benchfile("archive")
    localrule: True
    conda:
        "../envs/weightspace.yaml"
    params:
        run_dir=run_dir_of,
        snapshot=CODE_SNAPSHOT,
        repo=REPO,
        # targets, config files and --config, so that `archive rerun` repeats the run
        invocation=lambda wildcards: canonical_json(
            snakemake_invocation(workflow, REPO, [f"{CONFIG_DIR}/quick.yaml"])
        ),
    script:
        "../workflow/scripts/archive.py"
