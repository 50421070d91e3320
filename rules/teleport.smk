# Neural Teleportation (Armenta et al.): the paper's paths and job lists, compute rules,
# then plot rules. How the training matrix is cut into jobs and what each job reads of the
# config are in weightspace.teleport.jobs, the semantic checks in weightspace.teleport.config.
import re

from weightspace.teleport.jobs import (
    TRAINING_FIGURES as TELEPORT_TRAINING_FIGURES,
    figure_job_config as teleport_figure_job_config,
    figure_training_jobs as teleport_figure_training_jobs,
    flatness_job_config as teleport_flatness_job_config,
    flatness_train_job_config as teleport_flatness_train_job_config,
    gradients_job_config as teleport_gradients_job_config,
    gradients_jobs as teleport_gradients_jobs,
    micro_job_config as teleport_micro_job_config,
    training_job_config as teleport_training_job_config,
)

TELEPORT = config["teleport"]
TELEPORT_DIR = f"{RUN}/teleport"
# what a job on each data set reads: the quick NPZ or the prepared torchvision root
TELEPORT_DATA = {
    "mnist_subset": DATA_MANIFEST,
    "cifar10": f"{RUN}/data/torchvision_cifar10.record.json",
    "cifar100": f"{RUN}/data/torchvision_cifar100.record.json",
}
# Fig. 7 jobs, each named by the ids of the architectures it computes
TELEPORT_GRADIENT_JOBS = teleport_gradients_jobs(config)
# one file per training job: a chunk of a cell's runs, named by the arms it holds
TELEPORT_RUNS = (
    f"{TELEPORT_DIR}/runs/{{dataset}}/{{model}}/{{init}}/chunk{{chunk}}_{{arms}}.json"
)


# --- teleport_fig4_micro: one job, every (model, data set, batch size) ----------------
rule teleport_micro:
    input:
        data=[
            TELEPORT_DATA[d]
            for d in TELEPORT["fig4_micro"]["datasets"]
            if d != "random"
        ],
    output:
        csv=f"{TELEPORT_DIR}/micro/angles.csv",
        record=f"{TELEPORT_DIR}/micro/angles.record.json",
    log:
        logfile("teleport_micro"),
    benchmark:
        benchfile("teleport_micro")
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=60, mem_mb=8000),
    params:
        config=lambda wc: canonical_json(teleport_micro_job_config(config)),
    script:
        "../workflow/scripts/teleport_micro.py"


rule teleport_plot_micro:
    input:
        csv=rules.teleport_micro.output.csv,
    output:
        pdf=f"{TELEPORT_DIR}/teleport_fig4_micro.pdf",
        png=report(
            f"{TELEPORT_DIR}/teleport_fig4_micro.png",
            caption="../workflow/report/teleport_fig4_micro.rst",
            category="Neural teleportation",
        ),
        csv=f"{TELEPORT_DIR}/teleport_fig4_micro.csv",
        claims=f"{TELEPORT_DIR}/teleport_fig4_micro.claims.json",
    log:
        logfile("teleport_plot_micro"),
    benchmark:
        benchfile("teleport_plot_micro")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("teleport.fig4_micro"),
    script:
        "../workflow/scripts/teleport_plot_micro.py"


# --- teleport_fig5_flatness: train A and B, then the interpolation profiles ------------
rule teleport_flatness_train:
    input:
        data=TELEPORT_DATA[TELEPORT["fig5_flatness"]["dataset"]],
    output:
        model=f"{TELEPORT_DIR}/flatness/model_{{endpoint}}.pt",
        record=f"{TELEPORT_DIR}/flatness/model_{{endpoint}}.record.json",
    log:
        logfile("teleport_flatness_train", "{endpoint}"),
    benchmark:
        benchfile("teleport_flatness_train", "{endpoint}")
    wildcard_constraints:
        endpoint="a|b",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=600, mem_mb=8000),
    params:
        config=lambda wc: canonical_json(
            teleport_flatness_train_job_config(config, wc.endpoint)
        ),
        checkpoint=lambda wc, output: output.model.replace(".pt", ".checkpoint.pt"),
    script:
        "../workflow/scripts/teleport_flatness_train.py"


rule teleport_flatness:
    input:
        a=f"{TELEPORT_DIR}/flatness/model_a.pt",
        b=f"{TELEPORT_DIR}/flatness/model_b.pt",
        data=TELEPORT_DATA[TELEPORT["fig5_flatness"]["dataset"]],
    output:
        csv=f"{TELEPORT_DIR}/flatness/profile.csv",
        record=f"{TELEPORT_DIR}/flatness/profile.record.json",
    log:
        logfile("teleport_flatness"),
    benchmark:
        benchfile("teleport_flatness")
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=120, mem_mb=8000),
    params:
        config=lambda wc: canonical_json(teleport_flatness_job_config(config)),
    script:
        "../workflow/scripts/teleport_flatness.py"


rule teleport_plot_flatness:
    input:
        csv=rules.teleport_flatness.output.csv,
    output:
        pdf=f"{TELEPORT_DIR}/teleport_fig5_flatness.pdf",
        png=report(
            f"{TELEPORT_DIR}/teleport_fig5_flatness.png",
            caption="../workflow/report/teleport_fig5_flatness.rst",
            category="Neural teleportation",
        ),
        csv=f"{TELEPORT_DIR}/teleport_fig5_flatness.csv",
        claims=f"{TELEPORT_DIR}/teleport_fig5_flatness.claims.json",
    log:
        logfile("teleport_plot_flatness"),
    benchmark:
        benchfile("teleport_plot_flatness")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("teleport.fig5_flatness"),
    script:
        "../workflow/scripts/teleport_plot_flatness.py"


# --- teleport_fig7_gradients: models_per_job architectures per job -------------------
rule teleport_gradients:
    input:
        data=TELEPORT_DATA[TELEPORT["fig7_gradients"]["dataset"]],
    output:
        csv=f"{TELEPORT_DIR}/gradients/{{models}}.csv",
        record=f"{TELEPORT_DIR}/gradients/{{models}}.record.json",
    log:
        logfile("teleport_gradients", "{models}"),
    benchmark:
        benchfile("teleport_gradients", "{models}")
    wildcard_constraints:
        models="|".join(re.escape(j) for j in TELEPORT_GRADIENT_JOBS),
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=120, mem_mb=16000),
    params:
        config=lambda wc: canonical_json(
            teleport_gradients_job_config(config, wc.models)
        ),
    script:
        "../workflow/scripts/teleport_gradients.py"


rule teleport_plot_gradients:
    input:
        expand(
            f"{TELEPORT_DIR}/gradients/{{models}}.csv", models=TELEPORT_GRADIENT_JOBS
        ),
    output:
        pdf=f"{TELEPORT_DIR}/teleport_fig7_gradients.pdf",
        png=report(
            f"{TELEPORT_DIR}/teleport_fig7_gradients.png",
            caption="../workflow/report/teleport_fig7_gradients.rst",
            category="Neural teleportation",
        ),
        csv=f"{TELEPORT_DIR}/teleport_fig7_gradients.csv",
        claims=f"{TELEPORT_DIR}/teleport_fig7_gradients.claims.json",
    log:
        logfile("teleport_plot_gradients"),
    benchmark:
        benchfile("teleport_plot_gradients")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("teleport.fig7_gradients.models"),
    script:
        "../workflow/scripts/teleport_plot_gradients.py"


# --- teleport_fig11_histograms: no data, no training ---------------------------------
rule teleport_histograms:
    output:
        csv=f"{TELEPORT_DIR}/histograms/density.csv",
        stats=f"{TELEPORT_DIR}/histograms/statistics.csv",
        record=f"{TELEPORT_DIR}/histograms/density.record.json",
    log:
        logfile("teleport_histograms"),
    benchmark:
        benchfile("teleport_histograms")
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        config=cfg("seed", "teleport.fig11_histograms"),
    script:
        "../workflow/scripts/teleport_histograms.py"


rule teleport_plot_histograms:
    input:
        csv=rules.teleport_histograms.output.csv,
        stats=rules.teleport_histograms.output.stats,
    output:
        pdf=f"{TELEPORT_DIR}/teleport_fig11_histograms.pdf",
        png=report(
            f"{TELEPORT_DIR}/teleport_fig11_histograms.png",
            caption="../workflow/report/teleport_fig11_histograms.rst",
            category="Neural teleportation",
        ),
        csv=f"{TELEPORT_DIR}/teleport_fig11_histograms.csv",
        claims=f"{TELEPORT_DIR}/teleport_fig11_histograms.claims.json",
    log:
        logfile("teleport_plot_histograms"),
    benchmark:
        benchfile("teleport_plot_histograms")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        config=cfg("teleport.fig11_histograms"),
    script:
        "../workflow/scripts/teleport_plot_histograms.py"


# --- Figs 6, 8, 9, 10: the training matrix, runs shared between figures ---------------
rule teleport_train:
    input:
        data=lambda wc: TELEPORT_DATA[wc.dataset],
    output:
        result=TELEPORT_RUNS,
        record=TELEPORT_RUNS.replace(".json", ".record.json"),
    log:
        logfile("teleport_train", "{dataset}_{model}_{init}_chunk{chunk}_{arms}"),
    benchmark:
        benchfile("teleport_train", "{dataset}_{model}_{init}_chunk{chunk}_{arms}")
    wildcard_constraints:
        dataset="|".join(TELEPORT_DATA),
        model=r"[a-z0-9_]+(-[a-z0-9_]+)?",
        init=r"[a-z0-9_]+",
        arms=r"[a-z_]+(\+[a-z_]+)*",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=720, mem_mb=8000),
    params:
        config=lambda wc: canonical_json(
            teleport_training_job_config(
                config, wc.dataset, wc.model, wc.init, int(wc.chunk), wc.arms
            )
        ),
        checkpoint=lambda wc, output: output.result.replace(".json", ".state.pt"),
    script:
        "../workflow/scripts/teleport_train.py"


rule teleport_plot_training:
    input:
        lambda wc: [
            TELEPORT_RUNS.format(dataset=d, model=m, init=i, chunk=c, arms=a)
            for d, m, i, c, a in teleport_figure_training_jobs(config, wc.figure)
        ],
    output:
        pdf=f"{TELEPORT_DIR}/teleport_{{figure}}.pdf",
        png=report(
            f"{TELEPORT_DIR}/teleport_{{figure}}.png",
            caption="../workflow/report/teleport_training.rst",
            category="Neural teleportation",
        ),
        csv=f"{TELEPORT_DIR}/teleport_{{figure}}.csv",
        claims=f"{TELEPORT_DIR}/teleport_{{figure}}.claims.json",
    log:
        logfile("teleport_plot_training", "{figure}"),
    benchmark:
        benchfile("teleport_plot_training", "{figure}")
    wildcard_constraints:
        figure="|".join(TELEPORT_TRAINING_FIGURES),
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=lambda wc: canonical_json(teleport_figure_job_config(config, wc.figure)),
    script:
        "../workflow/scripts/teleport_plot_training.py"
