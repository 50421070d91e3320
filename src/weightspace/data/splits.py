"""In-memory train/test splits of image arrays and their hand-over to DataLoaders."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .checksums import array_checksum

_PARTS = ("train", "test")


@dataclass(frozen=True, eq=False)
class ArraySplit:
    """A train/test split held as numpy arrays.

    x_* are float32 (N, C, H, W), y_* int64 class ids in [0, num_classes).
    train_index/test_index point into the source arrays (the rows of the data set as
    shipped), `seed` made the split, and `checksum` is the SHA-256 of the source arrays
    before splitting (see checksums.array_checksum), for run records.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    seed: int
    checksum: str
    num_classes: int

    def __post_init__(self) -> None:
        for part in _PARTS:
            x, y, index = (
                getattr(self, f"x_{part}"),
                getattr(self, f"y_{part}"),
                getattr(self, f"{part}_index"),
            )
            if not (len(x) == len(y) == len(index)):
                raise ValueError(
                    f"{self.name}: {part} arrays disagree in length "
                    f"(x {len(x)}, y {len(y)}, index {len(index)})"
                )

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def split_checksum(self) -> str:
        """SHA-256 of the index arrays: identifies the exact split, not just the source data."""
        return array_checksum(self.train_index, self.test_index)

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        _check_part(part)
        return getattr(self, f"x_{part}"), getattr(self, f"y_{part}")

    def tensors(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of one part as torch tensors sharing memory with the arrays."""
        x, y = self.arrays(part)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(
            np.ascontiguousarray(y)
        )

    def dataset(self, part: str) -> TensorDataset:
        """A TensorDataset of (image, label) pairs, ready for a DataLoader."""
        return TensorDataset(*self.tensors(part))

    def replace_images(self, x_train: np.ndarray, x_test: np.ndarray) -> ArraySplit:
        """The same split with transformed images (e.g. normalised); labels and provenance kept."""
        if (
            x_train.shape[0] != self.x_train.shape[0]
            or x_test.shape[0] != self.x_test.shape[0]
        ):
            raise ValueError(
                "replacement images must keep the number of train and test examples"
            )
        return dataclasses.replace(self, x_train=x_train, x_test=x_test)

    def record(self) -> dict:
        """Provenance for run records."""
        return {
            "name": self.name,
            "seed": self.seed,
            "n_train": int(len(self.y_train)),
            "n_test": int(len(self.y_test)),
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
            "source_sha256": self.checksum,
            "split_sha256": self.split_checksum,
        }


def _check_part(part: str) -> None:
    if part not in _PARTS:
        raise ValueError(f"part must be one of {_PARTS}, got {part!r}")


def tensor_dataset(
    images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> TensorDataset:
    """A TensorDataset from any image/label arrays (numpy or torch) of equal length."""
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"images ({images.shape[0]}) and labels ({labels.shape[0]}) differ in length"
        )
    return TensorDataset(images, labels)
