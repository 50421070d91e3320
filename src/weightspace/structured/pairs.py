"""The quick proxy of a pretrained classifier's last layer: digit pairs (feature set
``mnist_pairs``).

fc1 of the quick SmallCNN feeds a 10-class head, so the trained layer acts through about
ten directions and every structure reaches dense accuracy from a small share. The paper
approximates a last layer on a 100-class subset (InceptionV3, W 100 × 2048). The proxy
builds a task of that shape from the quick data: an example is two digits of the same
split side by side, its features are the frozen SmallCNN features (fc1 inputs) of the two
digits concatenated (2 × 1,024), its class is the ordered pair, 10·first + second (100
classes); a softmax-regression last layer (100 × 2048) is trained on the training pairs.
Its accuracy needs about twenty directions (ten per digit), more than the share budget
allows a rank-limited structure below share 0.2. Pairs of the test split use test digits
only. No I/O: the caller gives the single-digit feature set and stores the result.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from weightspace.structured.features import FeatureSet

NAME = "mnist_pairs"


def draw_pairs(
    n_examples: int, n_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (first, second) of ``n_pairs`` ordered pairs drawn uniformly, with
    replacement, from ``n_examples`` examples."""
    if n_examples < 1 or n_pairs < 1:
        raise ValueError(
            f"need at least one example and one pair, got {n_examples} and {n_pairs}"
        )
    return rng.integers(0, n_examples, n_pairs), rng.integers(0, n_examples, n_pairs)


def pair_data(
    features: np.ndarray,
    labels: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    n_labels: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Features [f(first), f(second)] (float32) and classes n_labels·label(first) +
    label(second) of the pairs."""
    x = np.concatenate([features[first], features[second]], axis=1)
    y = n_labels * labels[first].astype(np.int64) + labels[second].astype(np.int64)
    return x.astype(np.float32), y


def train_last_layer(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression (a last layer on frozen features) by Adam on mini-batches;
    returns W (n_classes, F) and b (n_classes,) as float32."""
    generator = torch.Generator().manual_seed(seed)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    layer = torch.nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():  # PyTorch's default init, drawn from the seeded generator
        bound = 1.0 / np.sqrt(x.shape[1])
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(targets), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(layer(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    return (
        layer.weight.detach().numpy().astype(np.float32),
        layer.bias.detach().numpy().astype(np.float32),
    )


def pair_feature_set(single: FeatureSet, cfg: Mapping, seed: int) -> FeatureSet:
    """The ``mnist_pairs`` feature set from the single-digit SmallCNN feature set:
    ``cfg`` holds train_pairs, test_pairs, epochs, batch_size, lr and weight_decay.
    No head: predictions are argmax(U·Wᵀ + b)."""
    n_labels = int(max(single.y_train.max(), single.y_test.max())) + 1
    rng = np.random.default_rng(seed)
    parts = {}
    for part, count in (("train", cfg["train_pairs"]), ("test", cfg["test_pairs"])):
        x, labels = single.split(part)
        first, second = draw_pairs(len(labels), int(count), rng)
        parts[part] = pair_data(x, labels, first, second, n_labels)
    weight, bias = train_last_layer(
        *parts["train"],
        n_labels * n_labels,
        epochs=int(cfg["epochs"]),
        batch_size=int(cfg["batch_size"]),
        lr=float(cfg["lr"]),
        weight_decay=float(cfg["weight_decay"]),
        seed=int(rng.integers(2**62)),
    )

    def predict(x):
        return (x @ weight.T + bias).argmax(axis=1).astype(np.int64)

    empty = np.zeros((0, 0), dtype=np.float32)
    return FeatureSet(
        x_train=parts["train"][0],
        y_train=parts["train"][1],
        x_test=parts["test"][0],
        y_test=parts["test"][1],
        weight=weight,
        bias=bias,
        head_weight=empty,
        head_bias=np.zeros(0, dtype=np.float32),
        pred_train=predict(parts["train"][0]),
        pred_test=predict(parts["test"][0]),
    )
