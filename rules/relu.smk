# Two-layer ReLU inconsistency (Holzmüller & Steinwart): compute rules, then plot rules.


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
        code=code("weightspace.relu.kinks", "weightspace.data.seeds"),
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
    params:
        code=code("weightspace.plotting", "weightspace.relu.kinks"),
    script:
        "../workflow/scripts/plot_relu_kink_distributions.py"


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
        **gpu_resources(MC_GPUS, runtime=240, mem_mb=4000),
    params:
        config=mc_job_config,
        code=code("weightspace.relu.mc1d", "weightspace.relu.criterion"),
        checkpoint=lambda wc, output: output.result.replace(".json", ".state.pt"),
    script:
        "../workflow/scripts/relu_mc_chunk.py"


rule relu_mc_aggregate:
    input:
        mc_chunk_outputs(),
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
        code=code("weightspace.relu.mc1d", "weightspace.relu.mc_summary"),
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
        code=code("weightspace.plotting", "weightspace.relu.mc_summary"),
    script:
        "../workflow/scripts/plot_relu_mc.py"
