# Random bases descent (Gressmann et al.): the paper's paths and job lists, the one
# training rule (any experiment, several runs per job at quick scale, one per GPU job at
# paper scale), then table and figure rules. What each job reads of the config is in
# weightspace.rbd.jobs, the semantic checks in weightspace.rbd.config.

from weightspace.rbd.jobs import (
    datasets as rbd_datasets,
    job_config as rbd_job_config,
    job_results as rbd_job_results,
)

RBD_DIR = f"{RUN}/rbd"
RBD_DATA = {
    "mnist_subset": DATA_MANIFEST,
    "mnist": f"{RUN}/data/torchvision_mnist.record.json",
    "fashion_mnist": f"{RUN}/data/torchvision_fashion_mnist.record.json",
    "cifar10": f"{RUN}/data/torchvision_cifar10.record.json",
}
RBD_RUN = f"{RBD_DIR}/{{experiment}}/{{job}}.json"


# --- training: one job per chunk of runs of one experiment ----------------------------
rule rbd_train:
    input:
        unpack(lambda wc: {d: RBD_DATA[d] for d in rbd_datasets(config, wc.experiment)}),
    output:
        result=RBD_RUN,
        record=RBD_RUN.replace(".json", ".record.json"),
    log:
        logfile("rbd_train", "{experiment}_{job}"),
    benchmark:
        benchfile("rbd_train", "{experiment}_{job}")
    wildcard_constraints:
        experiment="table1|fig_dimensions|fig_compartments|table_distributed",
        job=r"chunk\d+",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=720, mem_mb=8000),
    params:
        config=lambda wc: canonical_json(rbd_job_config(config, wc.experiment, wc.job)),
        checkpoint=lambda wc, output: output.result.replace(".json", ".state.pt"),
    script:
        "../workflow/scripts/rbd_train.py"


# --- tables and figures -----------------------------------------------------------------
rule rbd_tabulate_table1:
    input:
        rbd_job_results(config, "table1", RBD_DIR),
    output:
        csv=f"{RBD_DIR}/rbd_table1.csv",
        html=report(
            f"{RBD_DIR}/rbd_table1.html",
            caption="../workflow/report/rbd_table1.rst",
            category="Random bases descent",
        ),
        tex=f"{RBD_DIR}/rbd_table1.tex",
        claims=f"{RBD_DIR}/rbd_table1.claims.json",
    log:
        logfile("rbd_tabulate_table1"),
    benchmark:
        benchfile("rbd_tabulate_table1")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("rbd.table1"),
    script:
        "../workflow/scripts/rbd_tabulate_table1.py"


rule rbd_plot_dimensions:
    input:
        rbd_job_results(config, "fig_dimensions", RBD_DIR),
    output:
        pdf=f"{RBD_DIR}/rbd_fig_dimensions.pdf",
        png=report(
            f"{RBD_DIR}/rbd_fig_dimensions.png",
            caption="../workflow/report/rbd_fig_dimensions.rst",
            category="Random bases descent",
        ),
        csv=f"{RBD_DIR}/rbd_fig_dimensions.csv",
        claims=f"{RBD_DIR}/rbd_fig_dimensions.claims.json",
    log:
        logfile("rbd_plot_dimensions"),
    benchmark:
        benchfile("rbd_plot_dimensions")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("rbd.fig_dimensions"),
    script:
        "../workflow/scripts/rbd_plot_dimensions.py"


rule rbd_plot_compartments:
    input:
        rbd_job_results(config, "fig_compartments", RBD_DIR),
    output:
        pdf=f"{RBD_DIR}/rbd_fig_compartments.pdf",
        png=report(
            f"{RBD_DIR}/rbd_fig_compartments.png",
            caption="../workflow/report/rbd_fig_compartments.rst",
            category="Random bases descent",
        ),
        csv=f"{RBD_DIR}/rbd_fig_compartments.csv",
        claims=f"{RBD_DIR}/rbd_fig_compartments.claims.json",
    log:
        logfile("rbd_plot_compartments"),
    benchmark:
        benchfile("rbd_plot_compartments")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("rbd.fig_compartments"),
    script:
        "../workflow/scripts/rbd_plot_compartments.py"


# rbd_fig_correlation: the cosines Table 1's RBD and FPD runs log every step
rule rbd_plot_correlation:
    input:
        rbd_job_results(config, "table1", RBD_DIR),
    output:
        pdf=f"{RBD_DIR}/rbd_fig_correlation.pdf",
        png=report(
            f"{RBD_DIR}/rbd_fig_correlation.png",
            caption="../workflow/report/rbd_fig_correlation.rst",
            category="Random bases descent",
        ),
        csv=f"{RBD_DIR}/rbd_fig_correlation.csv",
        claims=f"{RBD_DIR}/rbd_fig_correlation.claims.json",
    log:
        logfile("rbd_plot_correlation"),
    benchmark:
        benchfile("rbd_plot_correlation")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("rbd.table1"),
    script:
        "../workflow/scripts/rbd_plot_correlation.py"


rule rbd_tabulate_distributed:
    input:
        rbd_job_results(config, "table_distributed", RBD_DIR),
    output:
        csv=f"{RBD_DIR}/rbd_table_distributed.csv",
        html=report(
            f"{RBD_DIR}/rbd_table_distributed.html",
            caption="../workflow/report/rbd_table_distributed.rst",
            category="Random bases descent",
        ),
        tex=f"{RBD_DIR}/rbd_table_distributed.tex",
        claims=f"{RBD_DIR}/rbd_table_distributed.claims.json",
    log:
        logfile("rbd_tabulate_distributed"),
    benchmark:
        benchfile("rbd_tabulate_distributed")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("rbd.table_distributed"),
    script:
        "../workflow/scripts/rbd_tabulate_distributed.py"
