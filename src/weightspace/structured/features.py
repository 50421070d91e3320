"""Penultimate features and the last layer(s) of a classifier, with the feature check (spec §6).

A feature set holds the inputs U of the structured matrix W̃ (k × F) for a train and a test split,
the matrix W and bias b themselves, and an optional frozen head applied after the layer:

- quick scale (SmallCNN): U = inputs of fc1 (F = 1,024), W = fc1.weight (256 × 1024), head = ReLU → fc2,
  predictions argmax(head(U·Wᵀ + b));
- paper scale (pretrained torchvision classifier): U = penultimate features, W = rows of the last
  Linear selected by the class subset (in class-list order), no head, predictions argmax(U·Wᵀ + b).

Stored as NPZ with the arrays of `FeatureSet.arrays()`:
    x_train (N, F) float32, y_train (N,) int64, x_test (M, F) float32, y_test (M,) int64,
    weight (k, F) float32, bias (k,) float32,
    head_weight (c, k) float32 and head_bias (c,) float32 (empty arrays when there is no head),
    pred_train (N,) int64, pred_test (M,) int64: the full network's own predictions,
    which `check_predictions` compares with the predictions recomputed from the stored arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

ARRAYS = (
    "x_train",
    "y_train",
    "x_test",
    "y_test",
    "weight",
    "bias",
    "head_weight",
    "head_bias",
    "pred_train",
    "pred_test",
)


@dataclass(frozen=True, eq=False)
class FeatureSet:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    head_weight: np.ndarray
    head_bias: np.ndarray
    pred_train: np.ndarray
    pred_test: np.ndarray

    @property
    def has_head(self) -> bool:
        return self.head_weight.size > 0

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}

    @classmethod
    def from_arrays(cls, arrays) -> "FeatureSet":
        missing = [name for name in ARRAYS if name not in arrays]
        if missing:
            raise ValueError(
                f"feature file lacks the arrays {', '.join(missing)}; rebuild it"
            )
        return cls(**{name: np.asarray(arrays[name]) for name in ARRAYS})

    def split(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        return getattr(self, f"x_{part}"), getattr(self, f"y_{part}")

    def head(self, dtype=torch.float32) -> nn.Module:
        """The frozen part after the structured layer: ReLU → Linear, or the identity."""
        if not self.has_head:
            return nn.Identity()
        c, k = self.head_weight.shape
        linear = nn.Linear(k, c).to(dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(self.head_weight))
            linear.bias.copy_(torch.from_numpy(self.head_bias))
        head = nn.Sequential(nn.ReLU(), linear)
        for p in head.parameters():
            p.requires_grad_(False)
        return head

    def logits(
        self, x: np.ndarray, matrix: np.ndarray, bias: np.ndarray | None = None
    ) -> np.ndarray:
        """Class scores with W̃ = matrix in place of W (float64): head(x·W̃ᵀ + b)."""
        b = self.bias if bias is None else bias
        out = (
            np.asarray(x, dtype=np.float64) @ np.asarray(matrix, dtype=np.float64).T + b
        )
        if self.has_head:
            out = (
                np.maximum(out, 0.0) @ self.head_weight.astype(np.float64).T
                + self.head_bias
            )
        return out

    def accuracy(
        self,
        part: str,
        matrix: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> float:
        """Top-1 accuracy on a split with W̃ = matrix (default: the original W)."""
        x, y = self.split(part)
        scores = self.logits(x, self.weight if matrix is None else matrix, bias)
        return float(np.mean(scores.argmax(axis=1) == y))


def split_small_cnn(model: nn.Sequential) -> tuple[nn.Module, nn.Linear, nn.Module]:
    """(body, fc1, head) of a `small_cnn` with one hidden layer: body(x) are fc1's inputs and
    head(fc1(body(x))) equals model(x)."""
    names = list(model._modules)
    if "fc1" not in names or "fc2" not in names or names[-1] != "fc2":
        raise ValueError(
            f"expected a small_cnn with layers ... fc1, fc_act1, fc2; got {names}"
        )
    i = names.index("fc1")
    body = nn.Sequential(*[model._modules[n] for n in names[:i]])
    head = nn.Sequential(*[model._modules[n] for n in names[i + 1 :]])
    return body, model._modules["fc1"], head


@torch.no_grad()
def cnn_features(
    model: nn.Sequential, images: np.ndarray, batch_size: int = 500
) -> dict[str, np.ndarray]:
    """fc1 inputs, fc1 outputs and the network's predictions for `images` (N, C, H, W), in eval mode."""
    model.eval()
    body, fc1, head = split_small_cnn(model)
    feats, outs, preds = [], [], []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
        u = body(x)
        z = fc1(u)
        feats.append(u.numpy())
        outs.append(z.numpy())
        preds.append(model(x).argmax(dim=1).numpy())
    return {
        "features": np.concatenate(feats).astype(np.float32),
        "fc_out": np.concatenate(outs).astype(np.float32),
        "pred": np.concatenate(preds).astype(np.int64),
    }


def check_layer_output(
    features: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    reference: np.ndarray,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> float:
    """Raise unless features·Wᵀ + b reproduces the layer's own output; returns the largest deviation."""
    recomputed = np.asarray(features, np.float64) @ np.asarray(
        weight, np.float64
    ).T + np.asarray(bias, np.float64)
    dev = float(np.max(np.abs(recomputed - reference))) if reference.size else 0.0
    if not np.allclose(recomputed, reference, rtol=rtol, atol=atol):
        raise ValueError(
            f"feature check failed: features·Wᵀ + b differs from the layer output by up to {dev:.3g}"
        )
    return dev


def check_predictions(fs: FeatureSet, *, max_mismatch: float = 0.0) -> dict[str, float]:
    """The spec's check_features: predictions recomputed from the stored arrays against the network's own
    predictions. Raises if the mismatching fraction exceeds max_mismatch; returns fractions and accuracies."""
    out = {}
    for part in ("train", "test"):
        x, y = fs.split(part)
        pred = fs.logits(x, fs.weight).argmax(axis=1)
        mismatch = (
            float(np.mean(pred != getattr(fs, f"pred_{part}"))) if len(y) else 0.0
        )
        if mismatch > max_mismatch:
            raise ValueError(
                f"feature check failed on {part}: {mismatch:.2%} of the predictions recomputed from "
                f"the features differ from the network's (allowed {max_mismatch:.2%}); the label order "
                f"or the stored last layer is wrong"
            )
        out[f"{part}_mismatch"] = mismatch
        out[f"{part}_accuracy"] = float(np.mean(pred == y)) if len(y) else float("nan")
    return out


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """Name and module of the last nn.Linear of a torchvision classifier (fc, classifier[-1], ...)."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return found[-1]


def feature_model(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """A copy of `model` whose last Linear is replaced by the identity, and that Linear (spec §6)."""
    import copy

    features = copy.deepcopy(model).eval()
    name, linear = last_linear(features)
    parent = features
    parts = name.split(".")
    for part in parts[:-1]:
        parent = getattr(parent, part) if not part.isdigit() else parent[int(part)]
    if parts[-1].isdigit():
        parent[int(parts[-1])] = nn.Identity()
    else:
        setattr(parent, parts[-1], nn.Identity())
    return features, linear


@torch.no_grad()
def image_features(
    features: nn.Module,
    linear: nn.Linear,
    dataset,
    output_indices,
    device="cpu",
    progress=None,
) -> dict[str, np.ndarray]:
    """Penultimate features of every image, one image per forward (images keep their own size, as the
    original's Resize(256) without crop), and the prediction among the subset's output indices."""
    idx = torch.as_tensor(list(output_indices), dtype=torch.long)
    w = linear.weight[idx].to(device)
    b = linear.bias[idx].to(device)
    features = features.to(device).eval()
    feats, preds, labels = [], [], []
    for i in range(len(dataset)):
        image, label = dataset[i]
        u = features(image.unsqueeze(0).to(device)).reshape(1, -1)
        feats.append(u.cpu().numpy())
        preds.append(int((u @ w.T + b).argmax(dim=1).item()))
        labels.append(int(label))
        if progress is not None and (i + 1) % 1000 == 0:
            progress(i + 1, len(dataset))
    dim = linear.in_features
    return {
        "features": np.concatenate(feats).astype(np.float32)
        if feats
        else np.zeros((0, dim), np.float32),
        "labels": np.asarray(labels, np.int64),
        "pred": np.asarray(preds, np.int64),
    }


def check_pretrained_inputs(
    arch: str,
    weights: str,
    imagenet_root,
    class_list,
    torch_home=None,
    download: bool = False,
) -> None:
    """Raise (naming the problem and the fix) unless paper-scale feature extraction can run: an ImageNet
    folder with train/ and val/ holding the subset's classes, the class-list file, and the pretrained
    weights (in the torch hub cache under torch_home, or downloadable). Reads no images."""
    import os
    from pathlib import Path

    from weightspace.data import (
        check_imagenet_available,
        check_pretrained_available,
        read_class_list,
    )

    if imagenet_root is None:
        raise FileNotFoundError(
            "data.imagenet_root is null: set it to an ImageNet folder with train/<wnid>/ and "
            "val/ (class folders, or flat with ILSVRC2012_validation_ground_truth.txt)"
        )
    if not Path(imagenet_root).is_dir():
        raise FileNotFoundError(
            f"ImageNet folder data.imagenet_root = {imagenet_root} does not exist; fix the path"
        )
    if not Path(class_list).is_file():
        raise FileNotFoundError(
            f"class list {class_list} not found: write one line 'wnid ilsvrc_id name "
            f"output_index' per class (see config/README.md, structured.pretrained.class_lists)"
        )
    wnids = [c.wnid for c in read_class_list(class_list)]
    check_imagenet_available(
        imagenet_root, ("train", "val"), class_subset=wnids, class_list=class_list
    )
    old = os.environ.get("TORCH_HOME")
    if torch_home is not None:
        os.environ["TORCH_HOME"] = str(torch_home)
    try:
        check_pretrained_available(arch, weights, download=download)
    finally:
        if torch_home is not None:
            if old is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = old
