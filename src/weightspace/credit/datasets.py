"""The credit-assignment data sets (credit_assignment.md "Targets", §8) behind one
interface: ``steps_per_epoch``, ``train_batches(seed, epoch, start, stop)`` (the
minibatches of one epoch from step ``start`` on, in an order that depends only on the
run's seed and the epoch, so a resumed run sees the batches it would have seen) and
``eval_batches()``.

- ``mnist_subset``: the quick split (4,000 train / 1,000 test) in memory, standardised
  per pixel with training statistics; the 1,000 held-out images are the test set.
  ``input_pool`` k > 1 averages k x k pixel blocks first (28 x 28 to 14 x 14 for k = 2),
  a model's setting where its full-size runs do not fit the quick budget.
- ``imagenet``: ImageFolder-style ``train/`` and ``val/`` under a user-given root, the
  spec's pipeline (train: random-resized crop of area 0.08-1 and aspect 3/4-4/3 to 224,
  horizontal flip; eval: shorter side 256, centre 224; both normalised with ImageNet's
  mean and std), through ``weightspace.data.imagenet`` and its standard transforms.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from weightspace.data.checksums import array_checksum, file_checksums
from weightspace.data.normalization import fit_normalization
from weightspace.data.seeds import derive_seed

DATASETS = ("mnist_subset", "imagenet")


def _order(seed: int, epoch: int, n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(derive_seed(seed, "batches", epoch))
    return torch.randperm(n, generator=generator)


def _check_batches(n: int, batch_size: int, what: str) -> int:
    steps = n // batch_size
    if steps < 1:
        raise ValueError(
            f"{what} has {n} images, fewer than one batch of {batch_size}; lower "
            "credit.batch_size or use more images"
        )
    return steps


@dataclass
class TensorData:
    """A data set held as tensors (N, C, H, W); labels int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    batch_size: int
    eval_batch_size: int
    drop_eval_remainder: bool = False

    @property
    def steps_per_epoch(self) -> int:
        return _check_batches(len(self.y_train), self.batch_size, "the training set")

    @property
    def eval_size(self) -> int:
        n = len(self.y_test)
        return n - n % self.eval_batch_size if self.drop_eval_remainder else n

    def train_batches(
        self, seed: int, epoch: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches of one epoch, the last incomplete batch dropped."""
        stop = self.steps_per_epoch if stop is None else stop
        order = _order(seed, epoch, len(self.y_train))
        for step in range(start, stop):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield self.x_train[index], self.y_train[index]

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, self.eval_size, self.eval_batch_size):
            yield (
                self.x_test[i : i + self.eval_batch_size],
                self.y_test[i : i + self.eval_batch_size],
            )


def load_mnist_subset(
    npz_file: str | os.PathLike,
    batch_size: int,
    eval_batch_size: int,
    drop_eval_remainder: bool = False,
    input_pool: int = 1,
) -> tuple[TensorData, dict]:
    """The prepared quick split (rules/data.smk), mean-pooled over ``input_pool`` x
    ``input_pool`` blocks, then per-pixel standardised with the training part's
    statistics; returns the data and the checksum of the stored arrays."""
    with np.load(npz_file) as npz:
        x_train, y_train, x_test, y_test = (
            npz[k] for k in ("x_train", "y_train", "x_test", "y_test")
        )
    checksum = array_checksum(x_train, y_train, x_test, y_test)
    if input_pool > 1:
        x_train, x_test = (pool_images(x, input_pool) for x in (x_train, x_test))
    stats = fit_normalization(x_train, mode="pixel")
    data = TensorData(
        torch.from_numpy(stats.apply(x_train)),
        torch.from_numpy(y_train).long(),
        torch.from_numpy(stats.apply(x_test)),
        torch.from_numpy(y_test).long(),
        batch_size,
        eval_batch_size,
        drop_eval_remainder,
    )
    return data, {"mnist_subset_arrays": checksum}


def pool_images(images: np.ndarray, k: int) -> np.ndarray:
    """The mean of each k x k pixel block of (N, C, H, W) images; H and W must be
    multiples of k."""
    n, c, h, w = images.shape
    if h % k or w % k:
        raise ValueError(
            f"input_pool {k} does not divide the {h} x {w} images; use a divisor of "
            f"both (e.g. 2 or 4 for 28 x 28)"
        )
    return images.reshape(n, c, h // k, k, w // k, k).mean(axis=(3, 5))


class ImageFolderData:
    """ImageNet ``train/`` and ``val/`` of ``root`` (class folders, sorted wnids as
    labels), loaded by DataLoader workers."""

    def __init__(
        self,
        root: str | os.PathLike | None,
        batch_size: int,
        eval_batch_size: int,
        drop_eval_remainder: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        num_classes: int = 1000,
    ):
        if root is None:
            raise ValueError(
                "no ImageNet folder given: set data.imagenet_root to a folder with "
                "train/<wnid>/... and val/<wnid>/... (config/README.md)"
            )
        from weightspace.data.imagenet import imagenet_folder

        self.root = root
        self.train = imagenet_folder(root, "train", transform="imagenet_train")
        self.val = imagenet_folder(root, "val", transform="imagenet_eval")
        if self.train.classes != self.val.classes:
            only_train = sorted(set(self.train.classes) - set(self.val.classes))
            only_val = sorted(set(self.val.classes) - set(self.train.classes))
            raise ValueError(
                f"ImageNet under {root}: train/ and val/ hold different classes (only "
                f"in train: {only_train[:5]}, only in val: {only_val[:5]}); both need "
                "the same <wnid>/ folders, so that labels agree"
            )
        if len(self.train.classes) > num_classes:
            raise ValueError(
                f"ImageNet under {root} has {len(self.train.classes)} classes, more "
                f"than the model's {num_classes} outputs"
            )
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.drop_eval_remainder = drop_eval_remainder
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    @property
    def steps_per_epoch(self) -> int:
        return _check_batches(len(self.train), self.batch_size, "ImageNet train/")

    @property
    def eval_size(self) -> int:
        n = len(self.val)
        return n - n % self.eval_batch_size if self.drop_eval_remainder else n

    def checksums(self) -> dict:
        """Listing hashes of the class folders read (names and sizes, not contents)."""
        return file_checksums(
            [*self.train.files_used, *self.val.files_used], relative_to=self.root
        )

    def train_batches(
        self, seed: int, epoch: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        stop = self.steps_per_epoch if stop is None else stop
        order = _order(seed, epoch, len(self.train))
        indices = order[start * self.batch_size : stop * self.batch_size].tolist()
        # the workers' augmentation seeds follow the run, the epoch and the start
        generator = torch.Generator().manual_seed(
            derive_seed(seed, "augment", epoch, start)
        )
        loader = DataLoader(
            self.train,
            batch_size=self.batch_size,
            sampler=indices,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=True,
            generator=generator,
        )
        yield from loader

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = DataLoader(
            self.val,
            batch_size=self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=self.drop_eval_remainder,
        )
        yield from loader
