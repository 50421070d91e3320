# Credit assignment without weight symmetry (Kunin et al.): the paper's paths and job
# lists, the training rule, then the table and plot rules. How the runs are cut into
# jobs and what each job reads of the config are in weightspace.credit.jobs, the
# semantic checks in weightspace.credit.config.

from weightspace.credit.jobs import (
    check_imagenet_job_inputs as credit_check_imagenet_job_inputs,
    target_jobs as credit_target_jobs,
    train_job_config as credit_train_job_config,
)

CREDIT_DIR = f"{RUN}/credit"
# one file per training job: a chunk of the runs of one (model, noise variance) cell,
# named by the rule variants it holds
CREDIT_RUN = f"{CREDIT_DIR}/runs/{{dataset}}/{{model}}/noise{{noise}}/chunk{{chunk}}_{{variants}}.json"


# --- the training runs of all three targets ---------------------------------------------
rule credit_train:
    input:
        # ImageNet: stops before any job when the folder is not given or not usable;
        # skipped in dry runs (the paper plan)
        data=lambda wc: (
            DATA_MANIFEST
            if wc.dataset == "mnist_subset"
            else ([] if workflow.dryrun else credit_check_imagenet_job_inputs(config))
        ),
    output:
        result=CREDIT_RUN,
        record=CREDIT_RUN.replace(".json", ".record.json"),
    log:
        logfile(
            "credit_train", "{dataset}_{model}_noise{noise}_chunk{chunk}_{variants}"
        ),
    benchmark:
        benchfile(
            "credit_train", "{dataset}_{model}_noise{noise}_chunk{chunk}_{variants}"
        )
    wildcard_constraints:
        dataset="mnist_subset|imagenet",
        model=r"[a-z0-9_]+",
        noise=r"[0-9.e+-]+",
        variants=r"[a-z_]+(\+[a-z_]+)*",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        # an ImageNet run takes days on one GPU (a killed job resumes from its
        # checkpoint); a quick job minutes and a few hundred MB
        **gpu_resources(
            JOB_GPUS,
            runtime=lambda wc: 4320 if wc.dataset == "imagenet" else 60,
            mem_mb=lambda wc: 32000 if wc.dataset == "imagenet" else 2000,
        ),
    params:
        config=lambda wc: canonical_json(
            credit_train_job_config(
                config, wc.dataset, wc.model, wc.noise, int(wc.chunk), wc.variants
            )
        ),
        checkpoint=lambda wc, output: output.result.replace(".json", ".state.pt"),
    script:
        "../workflow/scripts/credit_train.py"


# --- credit_table_rules ---------------------------------------------------------------
rule credit_tabulate_rules:
    input:
        [
            CREDIT_RUN.format(dataset=d, model=m, noise=n, chunk=c, variants=v)
            for d, m, n, c, v in credit_target_jobs(config, "table_rules")
        ],
    output:
        csv=f"{CREDIT_DIR}/credit_table_rules.csv",
        html=report(
            f"{CREDIT_DIR}/credit_table_rules.html",
            caption="../workflow/report/credit_table_rules.rst",
            category="Credit assignment",
        ),
        tex=f"{CREDIT_DIR}/credit_table_rules.tex",
        claims=f"{CREDIT_DIR}/credit_table_rules.claims.json",
    log:
        logfile("credit_tabulate_rules"),
    benchmark:
        benchfile("credit_tabulate_rules")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg(
            "scale",
            "credit.dataset",
            "credit.epochs",
            "credit.learning_rate",
            "credit.lr_drop_epochs",
            "credit.eval_every_steps",
            "credit.alignment",
            "credit.model_settings",
            "credit.table_rules",
        ),
    script:
        "../workflow/scripts/credit_tabulate_rules.py"


# --- credit_fig_alignment ---------------------------------------------------------------
rule credit_plot_alignment:
    input:
        [
            CREDIT_RUN.format(dataset=d, model=m, noise=n, chunk=c, variants=v)
            for d, m, n, c, v in credit_target_jobs(config, "fig_alignment")
        ],
    output:
        pdf=f"{CREDIT_DIR}/credit_fig_alignment.pdf",
        png=report(
            f"{CREDIT_DIR}/credit_fig_alignment.png",
            caption="../workflow/report/credit_fig_alignment.rst",
            category="Credit assignment",
        ),
        csv=f"{CREDIT_DIR}/credit_fig_alignment.csv",
        claims=f"{CREDIT_DIR}/credit_fig_alignment.claims.json",
    log:
        logfile("credit_plot_alignment"),
    benchmark:
        benchfile("credit_plot_alignment")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg(
            "credit.fig_alignment", "credit.table_rules", "credit.model_settings"
        ),
    script:
        "../workflow/scripts/credit_plot_alignment.py"


# --- credit_fig_noise -----------------------------------------------------------------
rule credit_plot_noise:
    input:
        [
            CREDIT_RUN.format(dataset=d, model=m, noise=n, chunk=c, variants=v)
            for d, m, n, c, v in credit_target_jobs(config, "fig_noise")
        ],
    output:
        pdf=f"{CREDIT_DIR}/credit_fig_noise.pdf",
        png=report(
            f"{CREDIT_DIR}/credit_fig_noise.png",
            caption="../workflow/report/credit_fig_noise.rst",
            category="Credit assignment",
        ),
        csv=f"{CREDIT_DIR}/credit_fig_noise.csv",
        claims=f"{CREDIT_DIR}/credit_fig_noise.claims.json",
    log:
        logfile("credit_plot_noise"),
    benchmark:
        benchfile("credit_plot_noise")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("credit.fig_noise"),
    script:
        "../workflow/scripts/credit_plot_noise.py"
