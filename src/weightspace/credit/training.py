"""One optimisation step of a feedback model under a learning rule (§5): the total
loss loss_rate·(CE + L2) + alignment_rate·Σ R, one optimiser step, metrics back. No
I/O: the caller owns data, schedules of the learning rate, logging and checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .layers import clear_records
from .optim import forward_l2_penalty
from .rules import LearningRule, RateSchedule


def _optimizer_params(optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def train_step(
    model: nn.Module,
    rule: LearningRule,
    optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    step: int = 0,
    steps_per_epoch: int = 1,
    train_epochs: float | None = None,
    weight_decay: float = 0.0,
    l2_dense_bias: bool = False,
    rates: RateSchedule | None = None,
    alignment_optimizer=None,
    loss_fn: Callable = F.cross_entropy,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Train ``model`` (already converted) for one step on one batch.

    ``step`` (0-based, global) and ``steps_per_epoch`` place the step in the rate and
    coefficient schedules; ``train_epochs`` is needed by coefficients with start/stop.
    ``weight_decay``: λ of the L2 on forward kernels (``l2_dense_bias``: the dense
    bias too). ``rates``: the task / alignment loss weights (constant 1 by default).
    ``alignment_optimizer``: a separate optimiser for the alignment loss
    (over the backward kernels); the main ``optimizer`` then steps on the task
    gradients only. ``generator``: for noise inputs of the alignment signals.

    Returns the total, task, L2 and alignment losses, the two rates, the batch
    accuracy (classification outputs) and ``finite`` (all losses finite).
    """
    rule.attach(model)
    model.train()
    epoch = step / steps_per_epoch
    rates = RateSchedule() if rates is None else rates
    loss_rate, alignment_rate = rates(step, steps_per_epoch)
    try:
        outputs = model(inputs)
        task_loss = loss_fn(outputs, targets)
        l2_loss = forward_l2_penalty(model, weight_decay, l2_dense_bias)
        alignment_loss = rule.alignment_loss(model, epoch, train_epochs, generator)
        model_term = loss_rate * (task_loss + l2_loss)
        alignment_term = alignment_rate * alignment_loss
        if alignment_optimizer is None:
            optimizer.zero_grad(set_to_none=True)
            (model_term + alignment_term).backward()
            optimizer.step()
        else:
            _two_optimizer_step(
                optimizer, alignment_optimizer, model_term, alignment_term
            )
    finally:
        clear_records(model)
    result = {
        "loss": (model_term + alignment_term).item(),
        "task_loss": task_loss.item(),
        "l2_loss": l2_loss.item(),
        "alignment_loss": alignment_loss.item(),
        "loss_rate": float(loss_rate),
        "alignment_rate": float(alignment_rate),
    }
    if outputs.dim() == 2 and targets.dim() == 1:
        correct = (outputs.detach().argmax(dim=1) == targets).float().mean()
        result["accuracy"] = correct.item()
    result["finite"] = all(
        math.isfinite(result[k]) for k in ("task_loss", "l2_loss", "alignment_loss")
    )
    return result


def _two_optimizer_step(optimizer, alignment_optimizer, model_term, alignment_term):
    """Task gradients to ``optimizer``, alignment gradients to ``alignment_optimizer``
    (the original's two-loss ClipOptimizer): the alignment gradients are computed
    first, set aside, and handed over after the task step."""
    alignment_params = _optimizer_params(alignment_optimizer)
    optimizer.zero_grad(set_to_none=True)
    alignment_optimizer.zero_grad(set_to_none=True)
    if alignment_term.requires_grad:
        alignment_term.backward()
    alignment_grads = [p.grad for p in alignment_params]
    for p in alignment_params:
        p.grad = None
    model_term.backward()
    optimizer.step()
    for p, grad in zip(alignment_params, alignment_grads):
        p.grad = grad
    alignment_optimizer.step()
