"""Optimisers, the learning-rate schedule, the forward-kernel L2 and the noisy-update
wrapper (credit_assignment.md §5, §6, §9).

L2 is a loss term, (λ/2)·Σ‖W‖² over forward kernels (TF ``l2_regularizer(λ)``, gradient
λW), not the optimiser's weight decay: it is weighted by the task-loss rate like the
original, and B never receives it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .layers import FeedbackLinear, backward_kernels, feedback_layers
from .primitives import random_like

OPTIMIZERS = ("gd", "momentum", "adagrad", "rmsprop", "adam", "radam")
NOISE_DISTRIBUTIONS = ("normal", "uniform")
# (multiplier, from epoch) of the step schedule of ``constant_lr=False``.
LR_DECAY_STEPS = ((1.0, 0), (0.1, 30), (0.01, 60), (1e-3, 80))


def forward_l2_penalty(
    model: nn.Module, weight_decay: float, include_dense_bias: bool = False
) -> torch.Tensor:
    """(λ/2)·Σ‖W‖² over the forward kernels of the feedback layers (and the dense
    layers' biases with ``include_dense_bias``, as the ResNets' regularisers do)."""
    tensors = []
    for _, layer in feedback_layers(model):
        tensors.append(layer.weight)
        if include_dense_bias and isinstance(layer, FeedbackLinear):
            if layer.bias is not None:
                tensors.append(layer.bias)
    if not tensors:
        raise ValueError("the model has no feedback layers to regularise")
    if weight_decay == 0:
        return torch.zeros((), device=tensors[0].device, dtype=tensors[0].dtype)
    return 0.5 * weight_decay * sum(t.square().sum() for t in tensors)


def make_optimizer(
    name: str, params: Iterable, lr: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """The original's ``--optimizer`` choices; ``momentum`` is SGD with Nesterov
    momentum 0.9. (SWATS / SWRATS are not provided.)"""
    params = list(params)
    if name == "gd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def learning_rate(
    epoch: float,
    base_lr: float,
    batch_size: int | None = None,
    *,
    rescale_lr: bool = False,
    base_batch_size: int = 256,
    constant_lr: bool = True,
    warmup_epochs: float = 5.0,
    alternate_step_freq: int | None = None,
    delay_epochs: float | None = None,
    delay_epochs_offset: float | None = None,
    drop_epochs: tuple[float, ...] = (),
) -> float:
    """The learning rate at ``epoch`` (§5, the original's ``build_lr_schedule``).

    ``rescale_lr``: linear scaling by batch_size / base_batch_size. ``constant_lr``
    False: linear warm-up from 0 over ``warmup_epochs``, then ×1, 0.1, 0.01, 0.001 from
    epochs 0, 30, 60, 80. Alternating k task steps with one alignment step stretches
    every boundary (warm-up included) by k + 1. ``delay_epochs`` (the task loss's
    optimiser during a delay): the schedule starts after the delay. ``delay_epochs_
    offset`` (the alignment optimiser's): no warm-up, drops shifted by the offset so
    they coincide with the task loss's. ``drop_epochs`` (``constant_lr`` only, ours):
    ×0.1 more from each of these epochs, stretched like the schedule, so that a short
    run ends on a small step instead of wherever the last large step left it.
    """
    if delay_epochs is not None and delay_epochs_offset is not None:
        raise ValueError(
            "give delay_epochs (task loss) or delay_epochs_offset, not both"
        )
    lr = base_lr
    if rescale_lr:
        if batch_size is None:
            raise ValueError("rescale_lr needs batch_size")
        lr = lr * batch_size / base_batch_size
    stretch = 1 + (alternate_step_freq or 0)
    if constant_lr:
        return lr * 0.1 ** sum(epoch >= start * stretch for start in drop_epochs)
    if drop_epochs:
        raise ValueError("drop_epochs go with constant_lr; the §5 schedule has its own")
    if delay_epochs is not None:
        epoch = max(epoch - delay_epochs, 0.0)
    schedule = [(mult, start * stretch) for mult, start in LR_DECAY_STEPS]
    warmup = warmup_epochs * stretch
    if delay_epochs_offset is not None:
        schedule = [(m, s + delay_epochs_offset if s > 0 else s) for m, s in schedule]
        warmup = 0.0
    value = lr * epoch / warmup if warmup > 0 and epoch < warmup else lr
    for mult, start in schedule:
        if epoch >= max(start, warmup):
            value = lr * mult
    return value


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class NoisyUpdates:
    """Wraps an optimizer: after each step, every selected parameter gets += lr·ξ
    (§6), ξ i.i.d. with the given variance (``normal``, or ``uniform`` with the same
    variance), lr being the parameter's group learning rate at that step.

    ``params``: the parameters that receive noise, all of the optimizer's by default;
    Kolen-Pollack runs pass only the backward kernels (``noise_targets``). Variance 0
    adds nothing and draws nothing, so such a run equals the plain one bit for bit.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        variance: float,
        distribution: str = "normal",
        params: Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ):
        if distribution not in NOISE_DISTRIBUTIONS:
            raise ValueError(
                f"unknown noise distribution {distribution!r}; choose one of "
                f"{NOISE_DISTRIBUTIONS}"
            )
        if not variance >= 0:
            raise ValueError(f"noise variance must be >= 0, got {variance}")
        self.optimizer = optimizer
        self.variance = float(variance)
        self.distribution = distribution
        self.generator = generator
        group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        chosen = (
            [p for g in optimizer.param_groups for p in g["params"]]
            if params is None
            else list(params)
        )
        missing = [i for i, p in enumerate(chosen) if id(p) not in group_of]
        if missing:
            raise ValueError(
                f"{len(missing)} noise parameter(s) are not in the optimizer: noise is "
                "added after the optimizer's step, so it must own them"
            )
        self._targets = [(p, group_of[id(p)]) for p in chosen]

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state) -> None:
        self.optimizer.load_state_dict(state)

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        if self.distribution == "normal":
            return random_like(p, "normal", self.generator) * math.sqrt(self.variance)
        half_width = math.sqrt(12 * self.variance) / 2
        return (2 * random_like(p, "uniform", self.generator) - 1) * half_width

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        if self.variance > 0:
            for p, group in self._targets:
                p.add_(self._noise(p), alpha=group["lr"])
        return loss


def noise_targets(model: nn.Module, rule_name: str) -> list[nn.Parameter] | None:
    """What receives update noise: the backward kernels under Kolen-Pollack (§6, since
    the original's v2 update), every optimised parameter (None) otherwise."""
    if rule_name == "kolen_pollack":
        return backward_kernels(model)
    return None
