"""Per-layer alignment metrics (credit_assignment.md §2, §11, §12.3).

- weight angle: angle(W, B̃) between the forward kernel and the kernel the backward
  pass uses;
- projection angle: angle(x·W, x·B̃) over a batch;
- gradient angle: angle(dy·B̃, dy·W) for the same incoming dy: what the layer sends
  down against what backprop would send from that dy (the original's metric, not the
  angle to the true gradient);
- true-gradient angle (ours, §12.3): angle between W's gradient under the rule and
  under exact backprop (a second backward pass with B̃ := W);
- squared norms of W, B̃ and the layer output (per example, batch mean).

Angles are in degrees, computed in float64 over the flattened tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .layers import feedback_layers


def angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle in degrees between two tensors of the same size; nan if either is zero."""
    a = a.detach().reshape(-1).double()
    b = b.detach().reshape(-1).double()
    if a.numel() != b.numel():
        raise ValueError(f"angle needs equal sizes, got {a.numel()} and {b.numel()}")
    norms = a.norm() * b.norm()
    if norms == 0:
        return math.nan
    cosine = (a @ b / norms).clamp(-1.0, 1.0)
    return math.degrees(math.acos(cosine.item()))


def weight_angles(model: nn.Module) -> dict[str, float]:
    """angle(W, B̃) per feedback layer (B̃ = the kernel used now, sign(W) included)."""
    return {
        name: angle(layer.weight, layer.effective_backward_weight())
        for name, layer in feedback_layers(model)
    }


def weight_norms(model: nn.Module) -> dict[str, dict[str, float]]:
    """Squared norms ‖W‖² and ‖B̃‖² per feedback layer."""
    return {
        name: {
            "weight_norm": layer.weight.detach().double().square().sum().item(),
            "backward_norm": layer.effective_backward_weight()
            .detach()
            .double()
            .square()
            .sum()
            .item(),
        }
        for name, layer in feedback_layers(model)
    }


@contextmanager
def _probing(model: nn.Module):
    """Eval mode (BN running statistics untouched) with inputs and output gradients
    recorded; restores the flags and drops the records afterwards."""
    layers = [layer for _, layer in feedback_layers(model)]
    saved_flags = [(layer.record_input, layer.record_output_grad) for layer in layers]
    training = {m: m.training for m in model.modules()}
    model.eval()
    for layer in layers:
        layer.record_input = layer.record_output_grad = True
    try:
        yield
    finally:
        for layer, (record_input, record_grad) in zip(layers, saved_flags):
            layer.record_input, layer.record_output_grad = record_input, record_grad
            layer.clear_records()
        for m, flag in training.items():
            m.training = flag


def _forward_kernel_grads(model, loss_fn, inputs, targets):
    kernels = [layer.weight for _, layer in feedback_layers(model)]
    loss = loss_fn(model(inputs), targets)
    return torch.autograd.grad(loss, kernels, allow_unused=True)


def layer_probes(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable = F.cross_entropy,
    true_gradient: bool = False,
) -> dict[str, dict[str, float]]:
    """Per feedback layer, on one batch in eval mode: ``projection_angle``,
    ``gradient_angle``, ``output_norm`` (mean_n ‖(x·W)_n‖²), and with
    ``true_gradient`` the ``true_gradient_angle`` (§12.3). Parameter ``.grad`` fields
    are not touched."""
    results: dict[str, dict[str, float]] = {}
    with _probing(model):
        rule_grads = _forward_kernel_grads(model, loss_fn, inputs, targets)
        for name, layer in feedback_layers(model):
            x = layer.recorded_input
            dy = layer.recorded_output_grad
            with torch.no_grad():
                backward_kernel = layer.effective_backward_weight().detach()
                forward_projection = layer.project(x, layer.weight)
                backward_projection = layer.project(x, backward_kernel)
                entry = {
                    "projection_angle": angle(forward_projection, backward_projection),
                    "output_norm": (
                        forward_projection.double().square().sum() / x.shape[0]
                    ).item(),
                    "gradient_angle": math.nan,
                }
                if dy is not None:
                    sent = layer.transpose_project(dy, backward_kernel, x.shape)
                    exact = layer.transpose_project(dy, layer.weight, x.shape)
                    entry["gradient_angle"] = angle(sent, exact)
            results[name] = entry
        if true_gradient:
            modes = {name: layer.mode for name, layer in feedback_layers(model)}
            try:
                for _, layer in feedback_layers(model):
                    layer.mode = "backprop"
                true_grads = _forward_kernel_grads(model, loss_fn, inputs, targets)
            finally:
                for name, layer in feedback_layers(model):
                    layer.mode = modes[name]
            for name, g_rule, g_true in zip(results, rule_grads, true_grads):
                ok = g_rule is not None and g_true is not None
                results[name]["true_gradient_angle"] = (
                    angle(g_rule, g_true) if ok else math.nan
                )
    return results
