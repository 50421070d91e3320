# Data preparation: the quick-scale data sets shipped with packages, and paper-scale
# torchvision data sets (downloaded into data.root or read from an existing root).
from weightspace.data.jobs import torchvision_job_inputs

DATA_MANIFEST = f"{RUN}/data/mnist_subset.npz"
TORCHVISION_DATASETS = ["mnist", "fashion_mnist", "cifar10", "cifar100"]


rule prepare_mnist_subset:
    output:
        npz=f"{RUN}/data/mnist_subset.npz",
        record=f"{RUN}/data/mnist_subset.record.json",
    log:
        logfile("prepare_mnist_subset"),
    benchmark:
        benchfile("prepare_mnist_subset")
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        config=cfg("data.mnist_subset"),
    script:
        "../workflow/scripts/prepare_mnist_subset.py"


rule prepare_torchvision_dataset:
    input:
        # stops before any job when the data set is missing and may not be downloaded
        lambda wc: torchvision_job_inputs(config, wc.dataset),
    output:
        record=f"{RUN}/data/torchvision_{{dataset}}.record.json",
    log:
        logfile("prepare_torchvision_dataset", "{dataset}"),
    benchmark:
        benchfile("prepare_torchvision_dataset", "{dataset}")
    wildcard_constraints:
        dataset="|".join(TORCHVISION_DATASETS),
    conda:
        "../envs/weightspace.yaml"
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        config=cfg("data.root", "data.download", "data.verify_checksums"),
    script:
        "../workflow/scripts/prepare_torchvision_dataset.py"
