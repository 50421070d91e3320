# Random bases descent (Gressmann et al.): the paper's paths and job lists, compute rules,
# then table rules. What each job reads of the config is in weightspace.rbd.jobs, the
# semantic checks in weightspace.rbd.config. rbd_table1 is built; the other targets are
# registered as planned in src/weightspace/pipeline/targets.yaml.

from weightspace.rbd.jobs import (
    table1_job_config as rbd_table1_job_config,
    table1_jobs as rbd_table1_jobs,
)

RBD_DIR = f"{RUN}/rbd"
RBD_DATA = {
    "mnist_subset": DATA_MANIFEST,
    "mnist": f"{RUN}/data/torchvision_mnist.record.json",
    "fashion_mnist": f"{RUN}/data/torchvision_fashion_mnist.record.json",
    "cifar10": f"{RUN}/data/torchvision_cifar10.record.json",
}
RBD_RUN = f"{RBD_DIR}/table1/{{dataset}}/{{network}}/{{method}}/chunk{{chunk}}.json"


# --- rbd_table1: one job per (data set, network, method, chunk of seeds) --------------
rule rbd_train:
    input:
        data=lambda wc: RBD_DATA[wc.dataset],
    output:
        result=RBD_RUN,
        record=RBD_RUN.replace(".json", ".record.json"),
    log:
        logfile("rbd_train", "{dataset}_{network}_{method}_chunk{chunk}"),
    benchmark:
        benchfile("rbd_train", "{dataset}_{network}_{method}_chunk{chunk}")
    wildcard_constraints:
        dataset="|".join(RBD_DATA),
        network="fc|cnn",
        method="sgd|rbd|fpd|nes",
    conda:
        "../envs/weightspace.yaml"
    threads: config["threads"]
    resources:
        **gpu_resources(JOB_GPUS, runtime=720, mem_mb=8000),
    params:
        config=lambda wc: canonical_json(
            rbd_table1_job_config(
                config, wc.dataset, wc.network, wc.method, int(wc.chunk)
            )
        ),
        checkpoint=lambda wc, output: output.result.replace(".json", ".state.pt"),
    script:
        "../workflow/scripts/rbd_train.py"


rule rbd_tabulate_table1:
    input:
        [
            RBD_RUN.format(dataset=d, network=n, method=m, chunk=c)
            for d, n, m, c in rbd_table1_jobs(config)
        ],
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
