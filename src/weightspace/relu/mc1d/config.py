"""The training variant of a Monte Carlo chunk (spec §2.6) and the choices it takes."""

from __future__ import annotations

from dataclasses import dataclass

from weightspace.relu.shared import ConfigBase, choice, positive

OPTIMIZERS = ("gd", "sgd", "adam")
STEP_SIZES = ("large", "small")
KERNELS = ("auto", "c", "scatter", "dense")
PSI_BOUNDS = ("exact", "original")
# Bounds of the minibatch counters (id << 40) | (t << 16) | j (minibatches.py).
MAX_NETS = 1 << 24
MAX_STEPS = 1 << 24
MAX_MINIBATCH = 1 << 16


@dataclass(frozen=True)
class MCConfig(ConfigBase):
    """One training variant of §2.6; defaults are the main figure (GD, large step, sufficient)."""

    optimizer: str = choice("gd", OPTIMIZERS)
    step_size: str = choice("large", STEP_SIZES)
    sufficient_criterion: bool = True
    early_stopping: bool = False
    swapped_init: bool = False  # a ~ N(0, 2/m), w ~ N(0, 2) instead of He
    steps_per_check: int = positive(1000)
    max_checks: int = positive(1000)
    minibatch_size: int = positive(16)
    patience: int = positive(10)
    min_delta: float = 1e-8
    small_step: float = 0.01  # h = small_step / m
    testing: bool = (
        False  # keep certified nets running and record whether any crosses later
    )
    # "original" reproduces the original S_ψ bound (see criterion.py)
    psi_bound: str = choice("exact", PSI_BOUNDS)
    kernel: str = choice("auto", KERNELS)

    def __post_init__(self):
        super().__post_init__()
        if self.optimizer != "gd" and (
            self.minibatch_size > MAX_MINIBATCH or self.steps_per_check > MAX_STEPS
        ):
            raise ValueError(
                f"minibatch_size must be <= {MAX_MINIBATCH} and steps_per_check <= "
                f"{MAX_STEPS} for {self.optimizer} (the minibatch counters); got "
                f"{self.minibatch_size} and {self.steps_per_check}"
            )
        if self.testing and not self.sufficient_criterion:
            raise ValueError(
                "testing=True checks certified nets; it needs sufficient_criterion=True"
            )
