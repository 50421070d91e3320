# Two-layer ReLU inconsistency (Holzmüller & Steinwart): the paper's paths and job lists,
# compute rules, then plot rules. The cut of the experiments into jobs and what each job
# reads of the config are in weightspace.relu.jobs, the semantic checks of the relu config
# in weightspace.relu.config.
from weightspace.relu.jobs import (
    examples_job_config,
    mc_chunks,
    mc_job_config,
    setups_job_config,
    star_chunks,
    star_job_config,
)

MC = config["relu"]["mc"]
MC_DIR = f"{RUN}/relu/mc"
MC_VARIANTS = [v["name"] for v in MC["variants"]]
MC_CHUNK_OUTPUTS = [
    f"{MC_DIR}/{variant}/offset{offset}/m{width}/chunk{chunk}.json"
    for variant, offset, width, chunk in mc_chunks(MC)
]
STAR = config["relu"]["star"]
STAR_DIR = f"{RUN}/relu/star"
STAR_CHUNK_OUTPUTS = [f"{STAR_DIR}/m{w}/chunk{c}.json" for w, c, _ in star_chunks(STAR)]
SETUPS = config["relu"]["setups"]
SETUPS_DIR = f"{RUN}/relu/setups"
SETUPS_JOB_OUTPUTS = [f"{SETUPS_DIR}/{dist}.json" for dist in SETUPS["distributions"]]
EXAMPLES = config["relu"]["examples"]
EXAMPLES_DIR = f"{RUN}/relu/examples"


rule relu_kink_distributions:
    output:
        csv=f"{RUN}/relu/kink_distributions/cdf.csv",
        summary=f"{RUN}/relu/kink_distributions/summary.json",
        record=f"{RUN}/relu/kink_distributions/record.json",
    log:
        logfile("relu_kink_distributions"),
    benchmark:
        benchfile("relu_kink_distributions")
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg("seed", "relu.kink_distributions"),
    script:
        "../workflow/scripts/relu_kink_distributions.py"


rule relu_plot_kink_distributions:
    input:
        csv=rules.relu_kink_distributions.output.csv,
        summary=rules.relu_kink_distributions.output.summary,
    output:
        pdf=f"{RUN}/relu/relu_fig_kink_distributions.pdf",
        png=report(
            f"{RUN}/relu/relu_fig_kink_distributions.png",
            caption="../workflow/report/relu_fig_kink_distributions.rst",
            category="Two-layer ReLU inconsistency",
        ),
        csv=f"{RUN}/relu/relu_fig_kink_distributions.csv",
        claims=f"{RUN}/relu/relu_fig_kink_distributions.claims.json",
    log:
        logfile("relu_plot_kink_distributions"),
    benchmark:
        benchfile("relu_plot_kink_distributions")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    script:
        "../workflow/scripts/relu_plot_kink_distributions.py"


# --- relu_fig_mc: the 1-D Monte Carlo, one job per (variant, offset, width, chunk) ----------
rule relu_mc_chunk:
    output:
        result=f"{MC_DIR}/{{variant}}/offset{{offset}}/m{{width}}/chunk{{chunk}}.json",
        record=f"{MC_DIR}/{{variant}}/offset{{offset}}/m{{width}}/chunk{{chunk}}.record.json",
    log:
        logfile("relu_mc_chunk", "{variant}_offset{offset}_m{width}_chunk{chunk}"),
    benchmark:
        benchfile("relu_mc_chunk", "{variant}_offset{offset}_m{width}_chunk{chunk}")
    wildcard_constraints:
        variant="|".join(MC_VARIANTS),
        width=r"\d+",
        offset=r"[-0-9.e]+",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=240, mem_mb=4000),
    params:
        config=lambda wc: canonical_json(
            mc_job_config(config, wc.variant, int(wc.chunk))
        ),
        checkpoint=lambda wc, output: output.result.replace(".json", ".state.pt"),
    script:
        "../workflow/scripts/relu_mc_chunk.py"


rule relu_mc_aggregate:
    input:
        MC_CHUNK_OUTPUTS,
    output:
        csv=f"{MC_DIR}/summary.csv",
        record=f"{MC_DIR}/summary.record.json",
    log:
        logfile("relu_mc_aggregate"),
    benchmark:
        benchfile("relu_mc_aggregate")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg("relu.mc"),
    script:
        "../workflow/scripts/relu_mc_aggregate.py"


rule relu_plot_mc:
    input:
        csv=rules.relu_mc_aggregate.output.csv,
    output:
        pdf=f"{RUN}/relu/relu_fig_mc.pdf",
        png=report(
            f"{RUN}/relu/relu_fig_mc.png",
            caption="../workflow/report/relu_fig_mc.rst",
            category="Two-layer ReLU inconsistency",
        ),
        csv=f"{RUN}/relu/relu_fig_mc.csv",
        claims=f"{RUN}/relu/relu_fig_mc.claims.json",
    log:
        logfile("relu_plot_mc"),
    benchmark:
        benchfile("relu_plot_mc")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("relu.mc.variants"),
    script:
        "../workflow/scripts/relu_plot_mc.py"


# --- relu_fig_star: the star data set, one job per (width, chunk of nets) -----------------
rule relu_star_chunk:
    output:
        result=f"{STAR_DIR}/m{{width}}/chunk{{chunk}}.json",
        record=f"{STAR_DIR}/m{{width}}/chunk{{chunk}}.record.json",
    log:
        logfile("relu_star_chunk", "m{width}_chunk{chunk}"),
    benchmark:
        benchfile("relu_star_chunk", "m{width}_chunk{chunk}")
    wildcard_constraints:
        width=r"\d+",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=1440, mem_mb=8000),
    params:
        config=lambda wc: canonical_json(
            star_job_config(config, int(wc.width), int(wc.chunk))
        ),
        checkpoint=lambda wc, output: output.result.replace(".json", ".state.pt"),
    script:
        "../workflow/scripts/relu_star_chunk.py"


rule relu_star_aggregate:
    input:
        STAR_CHUNK_OUTPUTS,
    output:
        csv=f"{STAR_DIR}/summary.csv",
        record=f"{STAR_DIR}/summary.record.json",
    log:
        logfile("relu_star_aggregate"),
    benchmark:
        benchfile("relu_star_aggregate")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg("relu.star"),
    script:
        "../workflow/scripts/relu_star_aggregate.py"


rule relu_plot_star:
    input:
        csv=rules.relu_star_aggregate.output.csv,
    output:
        pdf=f"{RUN}/relu/relu_fig_star.pdf",
        png=report(
            f"{RUN}/relu/relu_fig_star.png",
            caption="../workflow/report/relu_fig_star.rst",
            category="Two-layer ReLU inconsistency",
        ),
        csv=f"{RUN}/relu/relu_fig_star.csv",
        claims=f"{RUN}/relu/relu_fig_star.claims.json",
    log:
        logfile("relu_plot_star"),
    benchmark:
        benchfile("relu_plot_star")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("relu.star"),
    script:
        "../workflow/scripts/relu_plot_star.py"


# --- relu_fig_setups, relu_table_setups: one job per distribution -------------------------
rule relu_setups_job:
    output:
        result=f"{SETUPS_DIR}/{{dist}}.json",
        record=f"{SETUPS_DIR}/{{dist}}.record.json",
    log:
        logfile("relu_setups_job", "{dist}"),
    benchmark:
        benchfile("relu_setups_job", "{dist}")
    wildcard_constraints:
        dist=r"ex-distr|rad-distr-\d+",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=1440, mem_mb=16000),
    params:
        config=canonical_json(setups_job_config(config)),
        checkpoint=lambda wc, output: output.result.replace(".json", ".partial.pt"),
    script:
        "../workflow/scripts/relu_setups_job.py"


rule relu_setups_aggregate:
    input:
        SETUPS_JOB_OUTPUTS,
    output:
        best=f"{SETUPS_DIR}/best.json",
        csv=f"{SETUPS_DIR}/all_configurations.csv",
        record=f"{SETUPS_DIR}/best.record.json",
    log:
        logfile("relu_setups_aggregate"),
    benchmark:
        benchfile("relu_setups_aggregate")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg("relu.setups"),
    script:
        "../workflow/scripts/relu_setups_aggregate.py"


rule relu_plot_setups:
    input:
        best=rules.relu_setups_aggregate.output.best,
    output:
        pdf=f"{RUN}/relu/relu_fig_setups.pdf",
        png=report(
            f"{RUN}/relu/relu_fig_setups.png",
            caption="../workflow/report/relu_fig_setups.rst",
            category="Two-layer ReLU inconsistency",
        ),
        csv=f"{RUN}/relu/relu_fig_setups.csv",
        claims=f"{RUN}/relu/relu_fig_setups.claims.json",
    log:
        logfile("relu_plot_setups"),
    benchmark:
        benchfile("relu_plot_setups")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("relu.setups"),
    script:
        "../workflow/scripts/relu_plot_setups.py"


rule relu_tabulate_setups:
    input:
        best=rules.relu_setups_aggregate.output.best,
    output:
        csv=f"{RUN}/relu/relu_table_setups.csv",
        html=report(
            f"{RUN}/relu/relu_table_setups.html",
            caption="../workflow/report/relu_table_setups.rst",
            category="Two-layer ReLU inconsistency",
        ),
        tex=f"{RUN}/relu/relu_table_setups.tex",
        claims=f"{RUN}/relu/relu_table_setups.claims.json",
    log:
        logfile("relu_tabulate_setups"),
    benchmark:
        benchfile("relu_tabulate_setups")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("relu.setups"),
    script:
        "../workflow/scripts/relu_tabulate_setups.py"


# --- relu_fig_examples: 1-D example nets (best ex-distr lrs of the setups grid) -----------
rule relu_examples:
    input:
        setups=f"{SETUPS_DIR}/ex-distr.json",
    output:
        result=f"{EXAMPLES_DIR}/examples.json",
        record=f"{EXAMPLES_DIR}/examples.record.json",
    log:
        logfile("relu_examples"),
    benchmark:
        benchfile("relu_examples")
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=60,
        mem_mb=2000,
    params:
        config=canonical_json(examples_job_config(config)),
    script:
        "../workflow/scripts/relu_examples.py"


rule relu_plot_examples:
    input:
        result=rules.relu_examples.output.result,
    output:
        pdf=f"{RUN}/relu/relu_fig_examples.pdf",
        png=report(
            f"{RUN}/relu/relu_fig_examples.png",
            caption="../workflow/report/relu_fig_examples.rst",
            category="Two-layer ReLU inconsistency",
        ),
        csv=f"{RUN}/relu/relu_fig_examples.csv",
        claims=f"{RUN}/relu/relu_fig_examples.claims.json",
    log:
        logfile("relu_plot_examples"),
    benchmark:
        benchfile("relu_plot_examples")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    script:
        "../workflow/scripts/relu_plot_examples.py"
