"""The data of the teleportation experiments by name: the quick-scale MNIST subset (an
NPZ written by the workflow), random data of a given shape, and CIFAR-10/100 from a
torchvision root (teleport.md, "Paper-scale data").

- ``mnist_subset``: [0, 1] pixels normalised with the training part's mean and std;
- ``cifar10`` / ``cifar100``: the CIFAR train transform (random crop, flip, normalise)
  when ``augment``, else the test transform;
- ``random``: uniform [0, 1) images with labels in 0..9, a function of the seed.

A validation split is held out of the training part (same indices for every run of one
seed scheme) and always evaluated without augmentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from weightspace.data.normalization import fit_normalization
from weightspace.data.seeds import derive_seed
from weightspace.data.synthetic import random_images
from weightspace.training.batches import TensorBatches

TORCHVISION_SETS = ("cifar10", "cifar100")


@dataclass
class Parts:
    """Training, validation (possibly empty) and test parts: tensors (x, y) or
    torch Datasets."""

    train: object
    validation: object
    test: object
    in_memory: bool

    def __post_init__(self):
        self.train_size = len(self.train[1] if self.in_memory else self.train)


def holdout(n: int, n_validation: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices): a seeded random ``n_validation`` held out."""
    if not 0 <= n_validation < n:
        raise ValueError(
            f"cannot hold out {n_validation} of {n} training samples for validation"
        )
    order = np.random.default_rng(derive_seed(seed, "validation")).permutation(n)
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def _mnist_subset(path) -> tuple[torch.Tensor, ...]:
    with np.load(path) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    stats = fit_normalization(x_train)
    return (
        torch.from_numpy(stats.apply(x_train)),
        torch.from_numpy(y_train).long(),
        torch.from_numpy(stats.apply(x_test)),
        torch.from_numpy(y_test).long(),
    )


def load_parts(
    dataset: str,
    *,
    mnist_file=None,
    data: Mapping | None = None,
    n_validation: int = 0,
    seed: int = 0,
    augment: bool = True,
    random_shape: tuple[int, ...] = (1, 28, 28),
    random_sizes: tuple[int, int] = (4000, 1000),
) -> Parts:
    """The parts of ``dataset``, with ``n_validation`` training samples held out.
    ``data``: the job's data keys (``root``, ``verify_checksums``) for torchvision sets."""
    if dataset in ("mnist_subset", "random"):
        if dataset == "mnist_subset":
            x_train, y_train, x_test, y_test = _mnist_subset(mnist_file)
        else:
            x_train, y_train = random_images(
                random_sizes[0], random_shape, 10, derive_seed(seed, "random", "train")
            )
            x_test, y_test = random_images(
                random_sizes[1], random_shape, 10, derive_seed(seed, "random", "test")
            )
        keep, held = holdout(len(y_train), n_validation, seed)
        keep, held = torch.from_numpy(keep), torch.from_numpy(held)
        return Parts(
            (x_train[keep], y_train[keep]),
            (x_train[held], y_train[held]),
            (x_test, y_test),
            in_memory=True,
        )
    if dataset not in TORCHVISION_SETS:
        raise ValueError(
            f"unknown data set {dataset!r}; use mnist_subset, random or one of "
            f"{TORCHVISION_SETS}"
        )
    from weightspace.data.torchvision_sets import torchvision_dataset

    def part(train: bool, transform: str):
        return torchvision_dataset(
            dataset,
            data["root"],
            train=train,
            transform=transform,
            verify_checksums=data["verify_checksums"],
        )

    train_full = part(True, "cifar_train" if augment else "cifar_test")
    plain = part(True, "cifar_test")
    keep, held = holdout(len(plain), n_validation, seed)
    return Parts(
        Subset(train_full, keep.tolist()),
        Subset(plain, held.tolist()),
        part(False, "cifar_test"),
        in_memory=False,
    )


def loader(
    part,
    parts: Parts,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
):
    """Minibatches of one part (``TensorBatches`` in memory, else a DataLoader)."""
    if parts.in_memory:
        x, y = part
        return TensorBatches(x, y, batch_size, shuffle, drop_last, generator)
    return DataLoader(
        part,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=generator,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def batch_list(
    parts: Parts,
    batch_size: int,
    count: int,
    generator: torch.Generator,
    same_first_batch: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` shuffled training batches (passing through the data as often as
    needed); ``same_first_batch`` repeats the first one (the original's Fig. 4 quirk)."""
    batches: list = []
    while len(batches) < (1 if same_first_batch else count):
        for batch in loader(parts.train, parts, batch_size, True, True, generator):
            batches.append(batch)
            if len(batches) == count:
                break
    if same_first_batch:
        batches = batches[:1] * count
    return [(x, y) for x, y in batches]
