# Structured last layers (Kissel & Diepold): the paper's paths and job lists, feature sets,
# compute rules, then plot and table rules. What each job reads of the config and the
# paper-scale data check are in weightspace.structured.jobs, the semantic checks of the
# structured config in weightspace.structured.config.

from weightspace.structured.jobs import (
    SHARED_KEYS as STRUCTURED_SHARED,
    approximation_job_config,
    check_pretrained_job_inputs,
    class_list_file,
    share_label,
    speed_job_config,
    table_job_config,
)

STRUCTURED = config["structured"]
STRUCTURED_DIR = f"{RUN}/structured"
# weightspace.structured.test_matrices.FAMILIES (a test checks they agree; importing the
# module here would slow down every start of the workflow)
STRUCTURED_FAMILIES = ["orthogonal", "random", "low_rank", "linear_sv", "sss", "psm"]
STRUCTURED_FAMILIES += ["hierarchical", "ldr"]
STRUCTURED_SPEED_SHAPES = [s["name"] for s in STRUCTURED["speed"]["shapes"]]
STRUCTURED_APPROX_METHODS = [m["name"] for m in STRUCTURED["approximation"]["methods"]]
STRUCTURED_TABLE_METHODS = [m["name"] for m in STRUCTURED["finetune_table"]["methods"]]
STRUCTURED_TABLE_OUTPUTS = [
    f"{STRUCTURED_DIR}/finetune_table/{m}/{f}.json"
    for f in STRUCTURED["finetune_table"]["features"]
    for m in STRUCTURED_TABLE_METHODS
]
# Feature set `small_cnn` or `mnist_pairs` (quick) or `<arch>/<subset>` (pretrained, paper
# scale) as NPZ.
STRUCTURED_FEATURES = f"{STRUCTURED_DIR}/features/{{}}.npz"


# --- feature sets ---------------------------------------------------------------------
rule structured_train_cnn:
    input:
        data=DATA_MANIFEST,
    output:
        model=f"{STRUCTURED_DIR}/cnn/small_cnn.pt",
        record=f"{STRUCTURED_DIR}/cnn/small_cnn.record.json",
    log:
        logfile("structured_train_cnn"),
    benchmark:
        benchfile("structured_train_cnn")
    # the quick run's longest chain (CNN, features, pairs, PSM): start it first
    priority: 50
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=2000,
    params:
        config=cfg("seed", "structured.cnn"),
        checkpoint=lambda wc, output: f"{output.model}.checkpoint",
    script:
        "../workflow/scripts/structured_train_cnn.py"


rule structured_cnn_features:
    input:
        model=rules.structured_train_cnn.output.model,
        data=DATA_MANIFEST,
    output:
        npz=STRUCTURED_FEATURES.format("small_cnn"),
        record=f"{STRUCTURED_DIR}/features/small_cnn.record.json",
    log:
        logfile("structured_cnn_features"),
    benchmark:
        benchfile("structured_cnn_features")
    priority: 50
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg("structured.cnn"),
    script:
        "../workflow/scripts/structured_cnn_features.py"


rule structured_pair_features:
    input:
        features=rules.structured_cnn_features.output.npz,
    output:
        npz=STRUCTURED_FEATURES.format("mnist_pairs"),
        record=f"{STRUCTURED_DIR}/features/mnist_pairs.record.json",
    log:
        logfile("structured_pair_features"),
    benchmark:
        benchfile("structured_pair_features")
    priority: 50
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg("seed", "structured.cnn", "structured.pairs"),
    script:
        "../workflow/scripts/structured_pair_features.py"


rule structured_pretrained_features:
    input:
        # stops before any job when data are missing; skipped in dry runs (the paper plan)
        lambda wc: (
            []
            if workflow.dryrun
            else check_pretrained_job_inputs(config, wc.arch, wc.subset)
        ),
    output:
        npz=f"{STRUCTURED_DIR}/features/{{arch}}/{{subset}}.npz",
        record=f"{STRUCTURED_DIR}/features/{{arch}}/{{subset}}.record.json",
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
        **gpu_resources(JOB_GPUS, runtime=720, mem_mb=16000),
    params:
        config=cfg(
            "device", "data.imagenet_root", "data.torch_home", "structured.pretrained"
        ),
        class_list=lambda wc: class_list_file(config, wc.subset),
    script:
        "../workflow/scripts/structured_pretrained_features.py"


# --- structured_table_testmatrices: one job per test-matrix family --------------------
rule structured_testmatrices:
    output:
        csv=f"{STRUCTURED_DIR}/testmatrices/{{family}}.csv",
        record=f"{STRUCTURED_DIR}/testmatrices/{{family}}.record.json",
    log:
        logfile("structured_testmatrices", "{family}"),
    benchmark:
        benchfile("structured_testmatrices", "{family}")
    wildcard_constraints:
        family="|".join(STRUCTURED_FAMILIES),
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=120,
        mem_mb=2000,
    params:
        config=cfg(*STRUCTURED_SHARED, "structured.testmatrices"),
    script:
        "../workflow/scripts/structured_testmatrices.py"


rule structured_tabulate_testmatrices:
    input:
        expand(
            f"{STRUCTURED_DIR}/testmatrices/{{family}}.csv", family=STRUCTURED_FAMILIES
        ),
    output:
        csv=f"{STRUCTURED_DIR}/structured_table_testmatrices.csv",
        html=report(
            f"{STRUCTURED_DIR}/structured_table_testmatrices.html",
            caption="../workflow/report/structured_table_testmatrices.rst",
            category="Structured last layers",
        ),
        tex=f"{STRUCTURED_DIR}/structured_table_testmatrices.tex",
        claims=f"{STRUCTURED_DIR}/structured_table_testmatrices.claims.json",
    log:
        logfile("structured_tabulate_testmatrices"),
    benchmark:
        benchfile("structured_tabulate_testmatrices")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("scale", "structured.testmatrices"),
    script:
        "../workflow/scripts/structured_tabulate_testmatrices.py"


# --- structured_fig_speed: one job per matrix shape -----------------------------------
# PyTorch timings plus the C reference (src/weightspace/structured/csrc/sss_speed.c,
# built with the system C compiler in the job; a missing compiler stops the job with a
# message naming the fix).
rule structured_speed:
    output:
        csv=f"{STRUCTURED_DIR}/speed/{{shape}}.csv",
        record=f"{STRUCTURED_DIR}/speed/{{shape}}.record.json",
    log:
        logfile("structured_speed", "{shape}"),
    benchmark:
        benchfile("structured_speed", "{shape}")
    wildcard_constraints:
        shape="|".join(STRUCTURED_SPEED_SHAPES),
    conda:
        "../envs/weightspace.yaml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=2000,
    params:
        config=lambda wc: canonical_json(speed_job_config(config, wc.shape)),
    script:
        "../workflow/scripts/structured_speed.py"


rule structured_plot_speed:
    input:
        expand(f"{STRUCTURED_DIR}/speed/{{shape}}.csv", shape=STRUCTURED_SPEED_SHAPES),
    output:
        pdf=f"{STRUCTURED_DIR}/structured_fig_speed.pdf",
        png=report(
            f"{STRUCTURED_DIR}/structured_fig_speed.png",
            caption="../workflow/report/structured_fig_speed.rst",
            category="Structured last layers",
        ),
        csv=f"{STRUCTURED_DIR}/structured_fig_speed.csv",
        claims=f"{STRUCTURED_DIR}/structured_fig_speed.claims.json",
    log:
        logfile("structured_plot_speed"),
    benchmark:
        benchfile("structured_plot_speed")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    script:
        "../workflow/scripts/structured_plot_speed.py"


# --- structured_fig_approximation: one job per approximator ---------------------------
rule structured_approximation:
    input:
        features=STRUCTURED_FEATURES.format(STRUCTURED["approximation"]["features"]),
    output:
        csv=f"{STRUCTURED_DIR}/approximation/{{method}}.csv",
        record=f"{STRUCTURED_DIR}/approximation/{{method}}.record.json",
    log:
        logfile("structured_approximation", "{method}"),
    benchmark:
        benchfile("structured_approximation", "{method}")
    wildcard_constraints:
        method="|".join(STRUCTURED_APPROX_METHODS),
    priority: 50
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=240,
        mem_mb=4000,
    params:
        config=lambda wc: canonical_json(approximation_job_config(config, wc.method)),
    script:
        "../workflow/scripts/structured_approximation.py"


rule structured_plot_approximation:
    input:
        features=STRUCTURED_FEATURES.format(STRUCTURED["approximation"]["features"]),
        csv=expand(
            f"{STRUCTURED_DIR}/approximation/{{method}}.csv",
            method=STRUCTURED_APPROX_METHODS,
        ),
    output:
        pdf=f"{STRUCTURED_DIR}/structured_fig_approximation.pdf",
        png=report(
            f"{STRUCTURED_DIR}/structured_fig_approximation.png",
            caption="../workflow/report/structured_fig_approximation.rst",
            category="Structured last layers",
        ),
        csv=f"{STRUCTURED_DIR}/structured_fig_approximation.csv",
        claims=f"{STRUCTURED_DIR}/structured_fig_approximation.claims.json",
    log:
        logfile("structured_plot_approximation"),
    benchmark:
        benchfile("structured_plot_approximation")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    script:
        "../workflow/scripts/structured_plot_approximation.py"


# --- structured_fig_finetune: one job per share (all iterations) ----------------------
rule structured_finetune:
    input:
        features=STRUCTURED_FEATURES.format(STRUCTURED["finetune"]["features"]),
    output:
        json=f"{STRUCTURED_DIR}/finetune/share{{share}}.json",
        record=f"{STRUCTURED_DIR}/finetune/share{{share}}.record.json",
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
        config=cfg(*STRUCTURED_SHARED, "structured.finetune"),
    script:
        "../workflow/scripts/structured_finetune.py"


rule structured_plot_finetune:
    input:
        features=STRUCTURED_FEATURES.format(STRUCTURED["finetune"]["features"]),
        json=expand(
            f"{STRUCTURED_DIR}/finetune/share{{share}}.json",
            share=[share_label(s) for s in STRUCTURED["finetune"]["shares"]],
        ),
    output:
        pdf=f"{STRUCTURED_DIR}/structured_fig_finetune.pdf",
        png=report(
            f"{STRUCTURED_DIR}/structured_fig_finetune.png",
            caption="../workflow/report/structured_fig_finetune.rst",
            category="Structured last layers",
        ),
        csv=f"{STRUCTURED_DIR}/structured_fig_finetune.csv",
        claims=f"{STRUCTURED_DIR}/structured_fig_finetune.claims.json",
    log:
        logfile("structured_plot_finetune"),
    benchmark:
        benchfile("structured_plot_finetune")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    script:
        "../workflow/scripts/structured_plot_finetune.py"


# --- structured_table_finetune: one job per (feature set, method) ---------------------
rule structured_finetune_method:
    input:
        features=lambda wc: STRUCTURED_FEATURES.format(wc.features),
    output:
        json=f"{STRUCTURED_DIR}/finetune_table/{{method}}/{{features}}.json",
        record=f"{STRUCTURED_DIR}/finetune_table/{{method}}/{{features}}.record.json",
    log:
        logfile("structured_finetune_method", "{method}_{features}"),
    benchmark:
        benchfile("structured_finetune_method", "{method}_{features}")
    wildcard_constraints:
        method="|".join(STRUCTURED_TABLE_METHODS),
        features=r"small_cnn|mnist_pairs|[a-z0-9_]+/[A-Za-z0-9_]+",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=240,
        mem_mb=8000,
    params:
        config=lambda wc: canonical_json(
            table_job_config(config, wc.method, wc.features)
        ),
    script:
        "../workflow/scripts/structured_finetune_method.py"


rule structured_tabulate_finetune:
    input:
        STRUCTURED_TABLE_OUTPUTS,
    output:
        csv=f"{STRUCTURED_DIR}/structured_table_finetune.csv",
        html=report(
            f"{STRUCTURED_DIR}/structured_table_finetune.html",
            caption="../workflow/report/structured_table_finetune.rst",
            category="Structured last layers",
        ),
        tex=f"{STRUCTURED_DIR}/structured_table_finetune.tex",
        claims=f"{STRUCTURED_DIR}/structured_table_finetune.claims.json",
    log:
        logfile("structured_tabulate_finetune"),
    benchmark:
        benchfile("structured_tabulate_finetune")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("scale", "structured.finetune_table"),
    script:
        "../workflow/scripts/structured_tabulate_finetune.py"
