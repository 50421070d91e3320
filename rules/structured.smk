# Structured last layers (Kissel & Diepold): feature sets, compute rules, then plot rules.
# Helpers (paths, names, the paper-scale data check) are in rules/common.smk.


# --- feature sets -------------------------------------------------------------------------
rule structured_train_cnn:
    input:
        data=DATA_MANIFEST,
    output:
        model=f"{SSS_DIR}/cnn/small_cnn.pt",
        record=f"{SSS_DIR}/cnn/small_cnn.record.json",
    log:
        logfile("structured_train_cnn"),
    benchmark:
        benchfile("structured_train_cnn")
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=2000,
    params:
        config=cfg("seed", "structured.cnn"),
        code=code("weightspace.models", "weightspace.training"),
        checkpoint=lambda wc, output: f"{output.model}.checkpoint",
    script:
        "../workflow/scripts/structured_train_cnn.py"


rule structured_cnn_features:
    input:
        model=rules.structured_train_cnn.output.model,
        data=DATA_MANIFEST,
    output:
        npz=sss_features_path("small_cnn"),
        record=f"{SSS_DIR}/features/small_cnn.record.json",
    log:
        logfile("structured_cnn_features"),
    benchmark:
        benchfile("structured_cnn_features")
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg("structured.cnn"),
        code=code("weightspace.models", "weightspace.structured.features"),
    script:
        "../workflow/scripts/structured_cnn_features.py"


rule structured_pretrained_features:
    input:
        sss_pretrained_available,
    output:
        npz=f"{SSS_DIR}/features/{{arch}}/{{subset}}.npz",
        record=f"{SSS_DIR}/features/{{arch}}/{{subset}}.record.json",
    log:
        logfile("structured_pretrained_features", "{arch}_{subset}"),
    benchmark:
        benchfile("structured_pretrained_features", "{arch}_{subset}")
    wildcard_constraints:
        arch=r"[a-z0-9_]+",
        subset=r"[A-Za-z0-9_]+",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(
            0 if config["device"] == "cpu" else 1, runtime=720, mem_mb=16000
        ),
    params:
        config=cfg(
            "device", "data.imagenet_root", "data.torch_home", "structured.pretrained"
        ),
        code=code("weightspace.data", "weightspace.structured.features"),
        class_list=lambda wc: sss_class_list(wc.subset),
    script:
        "../workflow/scripts/structured_pretrained_features.py"


# --- sss_table_testmatrices: one job per test-matrix family ---------------------------------
rule structured_testmatrices:
    output:
        csv=f"{SSS_DIR}/testmatrices/{{family}}.csv",
        record=f"{SSS_DIR}/testmatrices/{{family}}.record.json",
    log:
        logfile("structured_testmatrices", "{family}"),
    benchmark:
        benchfile("structured_testmatrices", "{family}")
    wildcard_constraints:
        family="|".join(SSS_FAMILIES),
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=120,
        mem_mb=2000,
    params:
        config=cfg(*SSS_SHARED, "structured.testmatrices"),
        code=SSS_CODE,
    script:
        "../workflow/scripts/structured_testmatrices.py"


rule structured_table_testmatrices:
    input:
        expand(f"{SSS_DIR}/testmatrices/{{family}}.csv", family=SSS_FAMILIES),
    output:
        csv=f"{SSS_DIR}/sss_table_testmatrices.csv",
        html=report(
            f"{SSS_DIR}/sss_table_testmatrices.html",
            caption="../workflow/report/sss_table_testmatrices.rst",
            category="Structured last layers",
        ),
        tex=f"{SSS_DIR}/sss_table_testmatrices.tex",
        claims=f"{SSS_DIR}/sss_table_testmatrices.claims.json",
    log:
        logfile("structured_table_testmatrices"),
    benchmark:
        benchfile("structured_table_testmatrices")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("structured.testmatrices"),
        code=code("weightspace.structured.summaries"),
    script:
        "../workflow/scripts/table_sss_testmatrices.py"


# --- sss_fig_speed: one job per matrix shape ------------------------------------------------
# PyTorch timings plus the C reference (src/weightspace/structured/csrc/sss_speed.c, built with the
# system C compiler in the job; a missing compiler stops the job with a message naming the fix).
rule structured_speed:
    input:
        csource=os.path.join(SRC, "weightspace", "structured", "csrc", "sss_speed.c"),
    output:
        csv=f"{SSS_DIR}/speed/{{shape}}.csv",
        record=f"{SSS_DIR}/speed/{{shape}}.record.json",
    log:
        logfile("structured_speed", "{shape}"),
    benchmark:
        benchfile("structured_speed", "{shape}")
    wildcard_constraints:
        shape="|".join(SSS_SPEED_SHAPES),
    conda:
        "../envs/weightspace.yaml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=2000,
    params:
        config=sss_speed_config,
        code=SSS_CODE,
        ccode=code("weightspace.structured.cspeed"),
    script:
        "../workflow/scripts/structured_speed.py"


rule structured_plot_speed:
    input:
        expand(f"{SSS_DIR}/speed/{{shape}}.csv", shape=SSS_SPEED_SHAPES),
    output:
        pdf=f"{SSS_DIR}/sss_fig_speed.pdf",
        png=report(
            f"{SSS_DIR}/sss_fig_speed.png",
            caption="../workflow/report/sss_fig_speed.rst",
            category="Structured last layers",
        ),
        csv=f"{SSS_DIR}/sss_fig_speed.csv",
        claims=f"{SSS_DIR}/sss_fig_speed.claims.json",
    log:
        logfile("structured_plot_speed"),
    benchmark:
        benchfile("structured_plot_speed")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        code=code("weightspace.plotting", "weightspace.structured.summaries"),
    script:
        "../workflow/scripts/plot_sss_speed.py"


# --- sss_fig_approximation: one job per approximator ----------------------------------------
rule structured_approximation:
    input:
        features=sss_features_path(SSS["approximation"]["features"]),
    output:
        csv=f"{SSS_DIR}/approximation/{{method}}.csv",
        record=f"{SSS_DIR}/approximation/{{method}}.record.json",
    log:
        logfile("structured_approximation", "{method}"),
    benchmark:
        benchfile("structured_approximation", "{method}")
    wildcard_constraints:
        method="|".join(SSS_APPROX_METHODS),
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=240,
        mem_mb=4000,
    params:
        config=sss_approximation_config,
        code=SSS_CODE,
    script:
        "../workflow/scripts/structured_approximation.py"


rule structured_plot_approximation:
    input:
        features=sss_features_path(SSS["approximation"]["features"]),
        csv=expand(f"{SSS_DIR}/approximation/{{method}}.csv", method=SSS_APPROX_METHODS),
    output:
        pdf=f"{SSS_DIR}/sss_fig_approximation.pdf",
        png=report(
            f"{SSS_DIR}/sss_fig_approximation.png",
            caption="../workflow/report/sss_fig_approximation.rst",
            category="Structured last layers",
        ),
        csv=f"{SSS_DIR}/sss_fig_approximation.csv",
        claims=f"{SSS_DIR}/sss_fig_approximation.claims.json",
    log:
        logfile("structured_plot_approximation"),
    benchmark:
        benchfile("structured_plot_approximation")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        code=code("weightspace.plotting", "weightspace.structured.summaries"),
    script:
        "../workflow/scripts/plot_sss_approximation.py"


# --- sss_fig_finetune: one job per share (all iterations) -----------------------------------
rule structured_finetune:
    input:
        features=sss_features_path(SSS["finetune"]["features"]),
    output:
        json=f"{SSS_DIR}/finetune/share{{share}}.json",
        record=f"{SSS_DIR}/finetune/share{{share}}.record.json",
    log:
        logfile("structured_finetune", "share{share}"),
    benchmark:
        benchfile("structured_finetune", "share{share}")
    wildcard_constraints:
        share=r"[0-9.e-]+",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=240,
        mem_mb=4000,
    params:
        config=cfg(*SSS_SHARED, "structured.finetune"),
        code=SSS_CODE,
    script:
        "../workflow/scripts/structured_finetune.py"


rule structured_plot_finetune:
    input:
        features=sss_features_path(SSS["finetune"]["features"]),
        json=expand(
            f"{SSS_DIR}/finetune/share{{share}}.json",
            share=[sss_share_label(s) for s in SSS["finetune"]["shares"]],
        ),
    output:
        pdf=f"{SSS_DIR}/sss_fig_finetune.pdf",
        png=report(
            f"{SSS_DIR}/sss_fig_finetune.png",
            caption="../workflow/report/sss_fig_finetune.rst",
            category="Structured last layers",
        ),
        csv=f"{SSS_DIR}/sss_fig_finetune.csv",
        claims=f"{SSS_DIR}/sss_fig_finetune.claims.json",
    log:
        logfile("structured_plot_finetune"),
    benchmark:
        benchfile("structured_plot_finetune")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        code=code("weightspace.plotting", "weightspace.structured.summaries"),
    script:
        "../workflow/scripts/plot_sss_finetune.py"


# --- sss_table_finetune: one job per (feature set, method) ----------------------------------
rule structured_finetune_method:
    input:
        features=lambda wc: sss_features_path(wc.features),
    output:
        json=f"{SSS_DIR}/finetune_table/{{method}}/{{features}}.json",
        record=f"{SSS_DIR}/finetune_table/{{method}}/{{features}}.record.json",
    log:
        logfile("structured_finetune_method", "{method}_{features}"),
    benchmark:
        benchfile("structured_finetune_method", "{method}_{features}")
    wildcard_constraints:
        method="|".join(SSS_TABLE_METHODS),
        features=r"small_cnn|[a-z0-9_]+/[A-Za-z0-9_]+",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=240,
        mem_mb=8000,
    params:
        config=sss_table_config,
        code=SSS_CODE,
    script:
        "../workflow/scripts/structured_finetune_method.py"


rule structured_table_finetune:
    input:
        sss_table_outputs(),
    output:
        csv=f"{SSS_DIR}/sss_table_finetune.csv",
        html=report(
            f"{SSS_DIR}/sss_table_finetune.html",
            caption="../workflow/report/sss_table_finetune.rst",
            category="Structured last layers",
        ),
        tex=f"{SSS_DIR}/sss_table_finetune.tex",
        claims=f"{SSS_DIR}/sss_table_finetune.claims.json",
    log:
        logfile("structured_table_finetune"),
    benchmark:
        benchfile("structured_table_finetune")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        code=code("weightspace.structured.summaries"),
    script:
        "../workflow/scripts/table_sss_finetune.py"
