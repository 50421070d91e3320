"""Random image data as a deterministic function of a seed.

Used where a paper trains or probes on random data of a real data set's shape
(e.g. teleportation's "RandomData": uniform [0, 1) images, labels in 0..9).
Numbers come from a private torch.Generator, so the global torch RNG is untouched
and the same seed gives the same tensors on every CPU run.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from .checksums import array_checksum
from .seeds import derive_seed
from .splits import ArraySplit

DISTRIBUTIONS = ("uniform", "normal")


def random_images(
    n: int,
    shape: tuple[int, ...],
    num_classes: int,
    seed: int,
    distribution: str = "uniform",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 of shape (n, *shape), labels int64 uniform in [0, num_classes)).

    distribution "uniform" draws pixels from U[0, 1), "normal" from N(0, 1).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    shape = tuple(int(s) for s in shape)
    if any(s <= 0 for s in shape):
        raise ValueError(f"shape must have positive sizes, got {shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}"
        )
    generator = torch.Generator().manual_seed(
        derive_seed(seed, "random_images", bits=63)
    )
    if distribution == "uniform":
        images = torch.rand((int(n), *shape), generator=generator)
    else:
        images = torch.randn((int(n), *shape), generator=generator)
    labels = torch.randint(
        0, int(num_classes), (int(n),), generator=generator, dtype=torch.int64
    )
    return images, labels


def random_image_split(
    n_train: int,
    n_test: int,
    shape: tuple[int, ...],
    num_classes: int,
    seed: int,
    distribution: str = "uniform",
) -> ArraySplit:
    """An ArraySplit of random images; train and test come from independent child seeds."""
    x_train, y_train = random_images(
        n_train, shape, num_classes, derive_seed(seed, "train"), distribution
    )
    x_test, y_test = random_images(
        n_test, shape, num_classes, derive_seed(seed, "test"), distribution
    )
    x_train, y_train, x_test, y_test = (
        t.numpy() for t in (x_train, y_train, x_test, y_test)
    )
    return ArraySplit(
        name=f"random_{distribution}",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        train_index=np.arange(n_train, dtype=np.int64),
        test_index=np.arange(n_test, dtype=np.int64),
        seed=int(seed),
        checksum=array_checksum(x_train, y_train, x_test, y_test),
        num_classes=int(num_classes),
    )
