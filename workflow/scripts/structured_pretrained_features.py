"""Paper scale: penultimate features of a pretrained torchvision classifier on an ImageNet class subset
(train/ and val/), one image per forward after Resize(256) without crop, with the feature check."""

import os

import numpy as np

from weightspace.data import imagenet_folder, load_pretrained, read_class_list
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.structured.features import (
    FeatureSet,
    check_predictions,
    feature_model,
    image_features,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    cfg = job.config["structured.pretrained"]
    if job.config["data.torch_home"] is not None:
        os.environ["TORCH_HOME"] = job.config["data.torch_home"]
    arch = sm.wildcards.arch
    model = load_pretrained(arch, cfg["weights"], download=cfg["download"])
    features, linear = feature_model(model)
    classes = read_class_list(sm.params.class_list)
    if any(c.output_index < 0 for c in classes):
        raise ValueError(
            f"{sm.params.class_list}: every line needs the torchvision output index (4th field)"
        )
    indices = [c.output_index for c in classes]
    wnids = [c.wnid for c in classes]
    root = job.config["data.imagenet_root"]
    parts = {}
    for part, split in (("train", "train"), ("test", "val")):
        ds = imagenet_folder(
            root,
            split,
            class_subset=wnids,
            class_list=sm.params.class_list,
            transform="imagenet_features",
        )
        job.log.info("%s: %d images of %d classes", split, len(ds), len(wnids))
        parts[part] = image_features(
            features,
            linear,
            ds,
            indices,
            device=job.device,
            progress=lambda i, n: job.log.info("%d/%d images", i, n),
        )
    w = linear.weight.detach()[indices].cpu().numpy().astype(np.float32)
    b = linear.bias.detach()[indices].cpu().numpy().astype(np.float32)
    empty = np.zeros((0, 0), np.float32)
    fs = FeatureSet(
        x_train=parts["train"]["features"],
        y_train=parts["train"]["labels"],
        x_test=parts["test"]["features"],
        y_test=parts["test"]["labels"],
        weight=w,
        bias=b,
        head_weight=empty,
        head_bias=np.zeros(0, np.float32),
        pred_train=parts["train"]["pred"],
        pred_test=parts["test"]["pred"],
    )
    check = check_predictions(fs, max_mismatch=0.002)
    with atomic_path(sm.output.npz) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **fs.arrays())
    job.record.metrics.update(check)
    job.record.data.update({"class_list": sm.params.class_list, "imagenet_root": root})
