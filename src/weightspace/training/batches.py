"""Minibatches of in-memory tensors without a DataLoader's per-sample collation.

For data sets that fit in memory (the quick-scale MNIST subset, random data) a
DataLoader over a TensorDataset indexes and stacks one sample at a time, which costs more
than a small network's step. ``TensorBatches`` slices whole batches from a permutation
drawn from its own generator; the training loop finds that generator (``.generator``) and
saves and restores its state with every checkpoint, so resumed runs replay exactly.
"""

from __future__ import annotations

import torch


class TensorBatches:
    """Iterate ``(inputs[idx], targets[idx])`` batches; a fresh permutation per pass when
    ``shuffle``; ``drop_last`` drops a final incomplete batch."""

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ):
        if len(inputs) != len(targets):
            raise ValueError(
                f"inputs and targets differ in length ({len(inputs)} vs {len(targets)})"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise ValueError(f"batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if drop_last and batch_size > len(inputs):
            raise ValueError(
                f"batch_size {batch_size} exceeds the {len(inputs)} samples and "
                "drop_last is set: every batch would be dropped"
            )
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        if shuffle and generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator

    def __len__(self) -> int:
        n, b = len(self.inputs), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n = len(self.inputs)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for batch in range(len(self)):
            start = batch * self.batch_size
            if order is None:
                index = slice(start, start + self.batch_size)
            else:
                index = order[start : start + self.batch_size]
            yield self.inputs[index], self.targets[index]
