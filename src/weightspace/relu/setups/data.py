"""The data sets of the setups grid: one per net (or one shared), standardised per net."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from weightspace.data.seeds import numpy_rng
from weightspace.relu.distributions import get_distribution


@dataclass
class SetupData:
    """Standardised train/valid/test sets of P nets and the train statistics used."""

    x_train: torch.Tensor  # (P, n_train, d)
    y_train: torch.Tensor  # (P, n_train)
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_mean: torch.Tensor  # (P, 1, d)
    x_std: torch.Tensor
    y_mean: torch.Tensor  # (P, 1)
    y_std: torch.Tensor

    def splits(self, device, dtype) -> tuple[torch.Tensor, ...]:
        """x/y of train, valid and test, contiguous on ``device`` in ``dtype``."""
        return tuple(
            t.to(device=device, dtype=dtype).contiguous()
            for t in (
                self.x_train,
                self.y_train,
                self.x_valid,
                self.y_valid,
                self.x_test,
                self.y_test,
            )
        )


def make_data(
    distribution: str,
    n_nets: int,
    n_train: int,
    n_valid: int,
    n_test: int,
    seed: int,
    shared_dataset: bool = False,
) -> SetupData:
    """Draw one data set per net (or one shared by all nets) and standardise X and y per net
    with the training mean and unbiased std, in float64 on the CPU."""
    dist = get_distribution(distribution)
    rng = numpy_rng(seed, "setups", "data", dist.name)
    n_sets = 1 if shared_dataset else n_nets
    sets = [
        dist.sample(n_sets, n, rng, dtype=torch.float64)
        for n in (n_train, n_valid, n_test)
    ]
    if shared_dataset:
        sets = [(x.expand(n_nets, -1, -1), y.expand(n_nets, -1)) for x, y in sets]
    xs, ys = [s[0] for s in sets], [s[1] for s in sets]
    x_mean, x_std = xs[0].mean(1, keepdim=True), xs[0].std(1, keepdim=True)
    y_mean, y_std = ys[0].mean(1, keepdim=True), ys[0].std(1, keepdim=True)
    xs = [(x - x_mean) / x_std for x in xs]
    ys = [(y - y_mean) / y_std for y in ys]
    return SetupData(
        xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], x_mean, x_std, y_mean, y_std
    )
