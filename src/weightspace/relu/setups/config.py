"""One configuration of the setups grid and the learning-rate grids it is trained on."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from weightspace.relu.distributions import get_distribution
from weightspace.relu.shared import DTYPES, ConfigBase, check_choice, choice, positive

PARAMETERISATIONS = ("kaiming", "ntk")
OPTIMIZERS = ("gd", "gd-mom", "adam")
BIAS_INITS = (
    "zero",
    "unif",
    "unif-pos",
    "unif-neg",
    "kink-neg-unif",
    "pytorch",
    "kink-neg-point",
)


@dataclass(frozen=True)
class SetupConfig(ConfigBase):
    parameterisation: str = choice("kaiming", PARAMETERISATIONS)
    optimizer: str = choice("gd", OPTIMIZERS)
    bias_init: str = choice("zero", BIAS_INITS)
    distribution: str = "ex-distr"
    lr: float = 8e-3
    width: int = positive(512)
    n_nets: int = positive(100)
    steps: int = positive(8192)
    batch_size: int = positive(256)
    valid_every: int = positive(64)
    train_per_dim: int = positive(256)  # n_train = train_per_dim · d
    n_valid: int = positive(1024)
    n_test: int = positive(1024)
    best_test_uses_valid: bool = False  # reproduce the original's best_test_rmse defect
    dtype: str = choice("float32", DTYPES)

    def __post_init__(self):
        super().__post_init__()
        get_distribution(self.distribution)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.n_train % self.batch_size:
            raise ValueError(
                f"n_train = {self.n_train} is not a multiple of batch_size = "
                f"{self.batch_size}; change train_per_dim or batch_size"
            )

    @property
    def dim(self) -> int:
        return get_distribution(self.distribution).dim

    @property
    def n_train(self) -> int:
        return self.train_per_dim * self.dim

    @property
    def setting(self) -> tuple[str, str, str, str]:
        """The key a best lr is chosen for: (parameterisation, optimizer, bias_init, dist.)."""
        return (
            self.parameterisation,
            self.optimizer,
            self.bias_init,
            self.distribution,
        )


# ---------------------------------------------------------------------------------------------
# Learning-rate grids


def base_lr(optimizer: str, parameterisation: str) -> float:
    """Centre of the lr grid: Adam 1e-2 (kaiming) / 8e-2 (ntk), SGD(+momentum) 8e-3 / 8e-1."""
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("parameterisation", parameterisation, PARAMETERISATIONS)
    if optimizer == "adam":
        return 8e-2 if parameterisation == "ntk" else 1e-2
    return 8e-1 if parameterisation == "ntk" else 8e-3


def lr_grid(
    optimizer: str,
    parameterisation: str,
    ks: Iterable[int] = range(-12, 11),
    factor: float = math.sqrt(2.0),
) -> list[float]:
    """base · factor^k for k in ks (the paper: factor √2, k = −12 … 10, 23 values)."""
    base = base_lr(optimizer, parameterisation)
    return [base * factor**k for k in ks]


def refined_lr_grid(best_lr: float, ks: Iterable[int] = range(-3, 4)) -> list[float]:
    """best · 2^{k/8}, k = −3 … 3: the refinement around the best grid lr."""
    return [best_lr * 2.0 ** (k / 8) for k in ks]
