"""The random-bases data pipeline on in-memory tensors (random_bases.md §7).

- MNIST / Fashion-MNIST: pixels in [0, 1]; training augmentation pads to 34x34, takes a
  random 28x28 crop and adds a random brightness delta ~ U(-0.5, 0.5) (no clipping);
- CIFAR-10: training augmentation pads to 40x40, takes a random 32x32 crop and flips
  horizontally with probability 1/2; then per-image standardisation on every split
  (as tf.image.per_image_standardization: std floored at 1/sqrt(pixels));
- a validation block of the test-set size cut from the training set at a random
  contiguous offset: the original drew it unseeded, ours from a seed, and the offset is
  returned so the run record can hold it.

Everything is vectorised over the batch and driven by an explicit generator.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _random_crops(
    x: torch.Tensor, pad: int, generator: torch.Generator
) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(h))[:, None, :, None]
    cols = (left[:, None] + torch.arange(w))[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    channel = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, channel, rows, cols]


def augment_mnist(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pad 3, random 28x28 crop, brightness delta U(-0.5, 0.5) per image."""
    cropped = _random_crops(x, 3, generator)
    delta = torch.rand(len(x), 1, 1, 1, generator=generator) - 0.5
    return cropped + delta


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Per-image standardisation: zero mean, unit std (std at least 1/sqrt(pixels))."""
    flat = x.flatten(1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, unbiased=False, keepdim=True).clamp_min(
        1 / math.sqrt(flat.shape[1])
    )
    return ((flat - mean) / std).view_as(x)


def augment_cifar(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pad 4, random 32x32 crop, random horizontal flip, then standardisation."""
    cropped = _random_crops(x, 4, generator)
    flip = torch.rand(len(x), generator=generator) < 0.5
    cropped[flip] = cropped[flip].flip(-1)
    return standardize(cropped)


def validation_block(
    n: int, n_validation: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(training indices, validation indices, offset): ``n_validation`` consecutive
    training samples from a seeded offset are held out."""
    if not 0 < n_validation < n:
        raise ValueError(
            f"cannot hold out {n_validation} of {n} samples for validation"
        )
    offset = int(np.random.default_rng(seed).integers(0, n - n_validation + 1))
    held = np.arange(offset, offset + n_validation)
    keep = np.concatenate([np.arange(offset), np.arange(offset + n_validation, n)])
    return keep, held, offset
