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
