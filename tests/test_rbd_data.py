"""The random-bases data pipeline (weightspace.rbd.data, random_bases.md §7)."""

import numpy as np
import pytest
import torch

from weightspace.rbd.data import (
    augment_cifar,
    augment_mnist,
    standardize,
    validation_block,
)


def test_mnist_augmentation_crops_a_window_and_shifts_brightness():
    x = torch.rand(64, 1, 28, 28)
    out = augment_mnist(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    again = augment_mnist(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
    for i in range(8):  # each image is a 28x28 window of its padded image plus a delta
        found = False
        for top in range(7):
            for left in range(7):
                diff = out[i] - padded[i, :, top : top + 28, left : left + 28]
                if torch.allclose(diff, diff.flatten()[0].expand_as(diff), atol=1e-6):
                    assert abs(float(diff.flatten()[0])) <= 0.5
                    found = True
        assert found


def test_cifar_augmentation_flips_and_standardises():
    x = torch.rand(200, 3, 32, 32)
    out = augment_cifar(x, torch.Generator().manual_seed(1))
    flat = out.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(200), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        flat.std(1, unbiased=False), torch.ones(200), atol=1e-4, rtol=0
    )
    constant = standardize(torch.full((1, 3, 4, 4), 0.3))
    assert torch.equal(constant, torch.zeros_like(constant))  # std floor, no NaN


def test_validation_block_is_seeded_contiguous_and_disjoint():
    keep, held, offset = validation_block(60_000, 10_000, seed=4)
    assert (keep.size, held.size) == (50_000, 10_000)
    assert np.array_equal(held, np.arange(offset, offset + 10_000))
    assert not set(keep) & set(held)
    assert validation_block(60_000, 10_000, seed=4)[2] == offset
    with pytest.raises(ValueError, match="cannot hold out"):
        validation_block(10, 10, 0)
