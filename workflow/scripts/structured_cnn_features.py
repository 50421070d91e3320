"""fc1 inputs of the trained SmallCNN for the train and test split, with the feature check (NPZ layout:
weightspace.structured.features)."""

import numpy as np
import torch

from weightspace.models import small_cnn
from weightspace.pipeline.job import script_job
from weightspace.provenance.atomic import atomic_path
from weightspace.structured.features import (
    FeatureSet,
    check_layer_output,
    check_predictions,
    cnn_features,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    model = small_cnn()
    model.load_state_dict(torch.load(sm.input.model, weights_only=True))
    model.eval()
    data = np.load(sm.input.data)
    parts = {part: cnn_features(model, data[f"x_{part}"]) for part in ("train", "test")}
    w = model.fc1.weight.detach().numpy().astype(np.float32)
    b = model.fc1.bias.detach().numpy().astype(np.float32)
    dev = max(
        check_layer_output(parts[p]["features"], w, b, parts[p]["fc_out"])
        for p in parts
    )
    fs = FeatureSet(
        x_train=parts["train"]["features"],
        y_train=data["y_train"].astype(np.int64),
        x_test=parts["test"]["features"],
        y_test=data["y_test"].astype(np.int64),
        weight=w,
        bias=b,
        head_weight=model.fc2.weight.detach().numpy().astype(np.float32),
        head_bias=model.fc2.bias.detach().numpy().astype(np.float32),
        pred_train=parts["train"]["pred"],
        pred_test=parts["test"]["pred"],
    )
    # float64 recomputation against the float32 network: allow a few argmax ties to flip
    check = check_predictions(fs, max_mismatch=0.002)
    with atomic_path(sm.output.npz) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **fs.arrays())
    job.record.metrics.update(max_layer_deviation=dev, **check)
    job.log.info(
        "features %s, layer check max deviation %.2e, %s", fs.x_train.shape, dev, check
    )
