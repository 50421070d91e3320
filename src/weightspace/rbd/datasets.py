"""The random-bases data sets as in-memory tensors (random_bases.md §7): the quick MNIST
subset (its 1,000 held-out images are the validation set, as the spec's quick column
says) or MNIST / Fashion-MNIST / CIFAR-10 from a torchvision root (a validation block of
the test-set size cut from the training set; the test set evaluated at the end)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from weightspace.rbd.data import (
    augment_cifar,
    augment_mnist,
    standardize,
    validation_block,
)

TORCHVISION_SETS = ("mnist", "fashion_mnist", "cifar10")


@dataclass
class Arrays:
    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor] | None
    cifar: bool
    validation_offset: int | None = None


def _torchvision_arrays(name: str, data: Mapping, train: bool):
    from weightspace.data.torchvision_sets import torchvision_dataset

    dataset = torchvision_dataset(
        name, data["root"], train=train, verify_checksums=data["verify_checksums"]
    )
    x = torch.as_tensor(np.asarray(dataset.data), dtype=torch.float32) / 255.0
    x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x[:, None]
    return x.contiguous(), torch.as_tensor(np.asarray(dataset.targets)).long()


def load_arrays(dataset: str, *, mnist_file=None, data: Mapping | None = None, seed=0):
    """The parts of ``dataset`` as float tensors in [0, 1] (N, C, H, W)."""
    if dataset == "mnist_subset":
        with np.load(mnist_file) as npz:
            parts = [
                torch.from_numpy(npz[k])
                for k in ("x_train", "y_train", "x_test", "y_test")
            ]
        return Arrays(
            (parts[0], parts[1].long()), (parts[2], parts[3].long()), None, False
        )
    if dataset not in TORCHVISION_SETS:
        raise ValueError(
            f"unknown data set {dataset!r}; use mnist_subset or one of {TORCHVISION_SETS}"
        )
    x, y = _torchvision_arrays(dataset, data, train=True)
    test = _torchvision_arrays(dataset, data, train=False)
    keep, held, offset = validation_block(len(y), len(test[1]), seed)
    keep, held = torch.from_numpy(keep), torch.from_numpy(held)
    return Arrays(
        (x[keep], y[keep]), (x[held], y[held]), test, dataset == "cifar10", offset
    )


def evaluation_view(
    arrays: Arrays, part: tuple[torch.Tensor, torch.Tensor], device="cpu"
):
    """A part as the network sees it at evaluation (CIFAR: standardised), on
    ``device``."""
    x, y = part
    return (standardize(x) if arrays.cifar else x).to(device), y.to(device)


def batch_stream(
    arrays: Arrays,
    batch_size: int,
    augment: bool,
    generator: torch.Generator,
    device="cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches: reshuffled every pass, last incomplete batch dropped,
    augmented as §7 says (on the CPU, with ``generator``), then moved to ``device``."""
    x, y = arrays.train
    while True:
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            xb = x[index]
            if augment:
                xb = (
                    augment_cifar(xb, generator)
                    if arrays.cifar
                    else augment_mnist(xb, generator)
                )
            elif arrays.cifar:
                xb = standardize(xb)
            yield xb.to(device), y[index].to(device)
