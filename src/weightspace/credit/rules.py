"""Learning rules for the backward weights, built from the primitives
(credit_assignment.md §4, §5, §12).

Forward weights always follow the task gradient computed with the approximate error
signal. Backward weights follow −∂R/∂B̃ of the rule's per-layer regulariser R (summed
over layers into the alignment loss), plus W's task gradient under Kolen-Pollack:

========================  =============================  ============================
rule                      R per layer                    defaults (``params.py``)
========================  =============================  ============================
backprop                  — (B unused)                   —
feedback                  0 (B frozen)                   —
symmetric                 α·decay + β·self               α=1e-3, β=2e-3
activation                α·sparse + β·amp               α=1e-3, β=2e-3
mirror                    α·decay + β·amp                α=1e-3, β=1e-3
information               α·amp + β·null + γ·decay       α=2e-3, β=1e-3, γ=1e-3
kolen_pollack             α·decay, dB = dW               α = λ/2 (§12.2)
sign_symmetry (extra)     — (backward uses sign(W))      —
========================  =============================  ============================

Coefficients may follow schedules (start / stop as fractions of the training epochs,
linear, exponential or triangular-cycle changes); the task and alignment losses are
weighted by a rate schedule (delay, alternate, step decay).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .layers import feedback_layers, set_feedback_mode
from .primitives import (
    AlignmentOptions,
    LayerSignals,
    amp,
    decay,
    null,
    self_alignment,
    sparse,
)

RULES = (
    "backprop",
    "feedback",
    "symmetric",
    "activation",
    "mirror",
    "information",
    "kolen_pollack",
    "sign_symmetry",
)
DEFAULT_COEFFICIENTS: dict[str, dict[str, float]] = {
    "symmetric": {"alpha": 1e-3, "beta": 2e-3},
    "activation": {"alpha": 1e-3, "beta": 2e-3},
    "mirror": {"alpha": 1e-3, "beta": 1e-3},
    "information": {"alpha": 2e-3, "beta": 1e-3, "gamma": 1e-3},
    "kolen_pollack": {"alpha": 1e-3},
}
# The original code's KP α, with 2α = 2e-3 ≠ λ = 1e-4 (§12.2): pass alpha= to reproduce.
KP_CODE_DEFAULT_ALPHA = 1e-3
FEEDBACK_MODE = {
    "backprop": "backprop",
    "feedback": "feedback",
    "symmetric": "feedback",
    "activation": "feedback",
    "mirror": "feedback",
    "information": "feedback",
    "kolen_pollack": "kolen_pollack",
    "sign_symmetry": "sign_symmetry",
}
# Rules whose R reads projections, so the layer inputs must be recorded.
_NEEDS_INPUTS = ("activation", "mirror", "information")
# Non-local rules need W at B's synapse (§4's "Class" column).
LOCAL_RULES = ("feedback", "mirror", "information")
SCHEDULE_TYPES = ("linear", "exponential")
# (loss multiplier, alignment multiplier, from epoch) of ``constant_rate=False``.
RATE_DECAY_STEPS = ((1.0, 1.0, 5), (0.1, 0.1, 30), (0.01, 0.01, 60), (1e-3, 1e-3, 80))


def _triangular_position(epoch: float, half_period: float) -> float:
    """0 → 1 → 0 over one cycle of 2·half_period epochs."""
    cycle = math.floor(1 + epoch / (2.0 * half_period))
    x = abs(epoch / half_period - 2.0 * cycle + 1)
    return max(0.0, 1.0 - x)


@dataclass(frozen=True)
class CoefficientSchedule:
    """One alignment coefficient over training.

    ``value`` between ``start`` and ``stop`` (fractions of ``train_epochs``; zero
    outside). ``schedule_type`` ``linear``: value + rate·t; ``exponential``:
    value·exp(rate·t), t being the epochs since the start, or with ``cycle`` > 0 (a
    period in epochs) the triangular position in the cycle times half the period.
    """

    value: float
    start: float = 0.0
    stop: float = 1.0
    schedule_type: str | None = None
    rate: float = 0.0
    cycle: float = 0.0

    def __post_init__(self):
        if self.schedule_type is not None and self.schedule_type not in SCHEDULE_TYPES:
            raise ValueError(
                f"unknown coefficient schedule_type {self.schedule_type!r}; choose one "
                f"of {SCHEDULE_TYPES} or None (constant)"
            )
        if not 0.0 <= self.start <= self.stop:
            raise ValueError(
                f"need 0 <= start <= stop (fractions of the training epochs), got "
                f"start={self.start}, stop={self.stop}"
            )

    def __call__(self, epoch: float = 0.0, train_epochs: float | None = None) -> float:
        if train_epochs is None:
            if not (self.start == 0.0 and self.stop == 1.0):
                raise ValueError(
                    "this coefficient has start/stop fractions: pass train_epochs"
                )
            start_epoch, stop_epoch = 0.0, math.inf
        else:
            start_epoch, stop_epoch = (
                self.start * train_epochs,
                self.stop * train_epochs,
            )
        if epoch < start_epoch or epoch > stop_epoch:
            return 0.0
        value = self.value
        if self.schedule_type is not None:
            since_start = epoch - start_epoch
            if self.cycle > 0:
                half = 0.5 * self.cycle
                change = _triangular_position(since_start, half) * half
            else:
                change = since_start
            if self.schedule_type == "linear":
                value = value + self.rate * change
            else:
                value = value * math.exp(self.rate * change)
        return value


@dataclass(frozen=True)
class RateSchedule:
    """Weights of the task loss (CE + L2) and of the alignment loss at a step.

    ``delay_epochs``: task weight 0 for the first epochs (alignment only).
    ``alternate_step_freq`` k: k task steps, then one alignment step (during a delay
    every step is an alignment step). ``constant_rate=False``: both weights × 1, 0.1,
    0.01, 0.001 from epochs 5, 30, 60, 80.
    """

    loss_rate: float = 1.0
    alignment_rate: float = 1.0
    delay_epochs: float | None = None
    alternate_step_freq: int | None = None
    constant_rate: bool = True

    def __post_init__(self):
        k = self.alternate_step_freq
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"alternate_step_freq must be an int >= 1, got {k!r}")

    def __call__(self, step: int, steps_per_epoch: int = 1) -> tuple[float, float]:
        epoch = step / steps_per_epoch
        loss_rate, alignment_rate = self.loss_rate, self.alignment_rate
        delaying = self.delay_epochs is not None and epoch < self.delay_epochs
        if delaying:
            loss_rate = 0.0
        if self.alternate_step_freq is not None:
            alignment_step = step % (self.alternate_step_freq + 1) == 0
            if alignment_step:
                loss_rate = 0.0
            if not (alignment_step or delaying):
                alignment_rate = 0.0
        if not self.constant_rate:
            loss_mult = alignment_mult = 1.0
            for loss_m, alignment_m, start in RATE_DECAY_STEPS:
                if epoch >= start:
                    loss_mult, alignment_mult = loss_m, alignment_m
            loss_rate, alignment_rate = (
                loss_rate * loss_mult,
                alignment_rate * alignment_mult,
            )
        return loss_rate, alignment_rate


def _as_schedule(value) -> CoefficientSchedule:
    if isinstance(value, CoefficientSchedule):
        return value
    if isinstance(value, Mapping):
        return CoefficientSchedule(**value)
    return CoefficientSchedule(float(value))


@dataclass(frozen=True)
class LearningRule:
    """A rule for the backward weights; build one with ``make_rule``.

    Information alignment options: ``reconstruction_reversal`` (null on G·Wᵀ instead
    of F·B), ``reconstruction_amp`` (amp between the input and the reconstruction
    instead of between F and G), ``use_sparse`` (sparse instead of decay).
    ``sign_symmetry_scaled`` (default): the sign-symmetry backward kernel is sign(W)
    times the layer's mean |W|, which has the angle of sign(W) to W but keeps the
    propagated signal at backprop's scale; off, B = sign(W) itself, whose signal grows
    by ~1/mean|W| per layer and makes plain SGD diverge in deep networks.
    """

    name: str
    coefficients: Mapping[str, CoefficientSchedule] = field(default_factory=dict)
    options: AlignmentOptions = AlignmentOptions()
    reconstruction_reversal: bool = False
    reconstruction_amp: bool = False
    use_sparse: bool = False
    sign_symmetry_scaled: bool = True

    def __post_init__(self):
        if self.name not in RULES:
            raise ValueError(
                f"unknown learning rule {self.name!r}; choose one of {RULES}"
            )
        needed = set(DEFAULT_COEFFICIENTS.get(self.name, {}))
        given = set(self.coefficients)
        if given != needed:
            raise ValueError(
                f"rule {self.name!r} takes coefficients {sorted(needed)}, got "
                f"{sorted(given)}"
            )

    @property
    def feedback_mode(self) -> str:
        return FEEDBACK_MODE[self.name]

    @property
    def has_alignment_loss(self) -> bool:
        return self.name in DEFAULT_COEFFICIENTS

    @property
    def is_local(self) -> bool:
        return self.name in LOCAL_RULES

    def attach(self, model: nn.Module) -> nn.Module:
        """Put every feedback layer of ``model`` in this rule's mode and record the
        layer inputs when the rule reads them. Idempotent; returns the model."""
        set_feedback_mode(model, self.feedback_mode)
        for _, layer in feedback_layers(model):
            layer.record_input = self.name in _NEEDS_INPUTS
            layer.sign_symmetry_scaled = self.sign_symmetry_scaled
        return model

    def coefficient_values(
        self, epoch: float = 0.0, train_epochs: float | None = None
    ) -> dict[str, float]:
        return {k: s(epoch, train_epochs) for k, s in self.coefficients.items()}

    def regularization(
        self, signals: LayerSignals, coefficients: Mapping[str, float]
    ) -> torch.Tensor:
        """R of one layer from its signals."""
        c = coefficients
        s = signals
        if self.name == "symmetric":
            return c["alpha"] * decay(s.forward_kernel, s.backward_kernel) + c[
                "beta"
            ] * self_alignment(s.forward_kernel, s.backward_kernel)
        if self.name == "activation":
            return c["alpha"] * sparse(s.forward_projection, s.backward_projection) + c[
                "beta"
            ] * amp(s.forward_projection, s.backward_projection)
        if self.name == "mirror":
            return (
                c["alpha"] * decay(s.forward_kernel, s.backward_kernel)
                + c["beta"] * s.projection_amp()
            )
        if self.name == "kolen_pollack":
            return c["alpha"] * decay(s.forward_kernel, s.backward_kernel)
        if self.name == "information":
            return self._information(s, c)
        raise ValueError(f"rule {self.name!r} has no alignment regulariser")

    def _information(self, s: LayerSignals, c: Mapping[str, float]) -> torch.Tensor:
        if self.reconstruction_reversal:
            reconstruction = s.backward_reconstruction
            null_term = null(None, reconstruction)
        else:
            reconstruction = s.forward_reconstruction
            null_term = null(reconstruction, None)
        if self.reconstruction_amp:
            amp_term = amp(s.inputs, reconstruction)
        else:  # after the reconstruction, so that amp can be read from it
            amp_term = s.projection_amp()
        if self.use_sparse:
            decay_term = sparse(s.forward_projection, s.backward_projection)
        else:
            decay_term = decay(s.forward_kernel, s.backward_kernel)
        return c["alpha"] * amp_term + c["beta"] * null_term + c["gamma"] * decay_term

    def layer_losses(
        self,
        model: nn.Module,
        epoch: float = 0.0,
        train_epochs: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """R of every feedback layer, by layer name (empty for rules without R).

        Reads the inputs recorded by the last forward pass (rules that need them).
        """
        if not self.has_alignment_loss:
            return {}
        coefficients = self.coefficient_values(epoch, train_epochs)
        losses = {}
        for name, layer in feedback_layers(model):
            inputs = layer.recorded_input if self.name in _NEEDS_INPUTS else None
            if self.name in _NEEDS_INPUTS and inputs is None:
                raise ValueError(
                    f"layer {name!r} has no recorded input: call rule.attach(model) "
                    "before the forward pass (records are cleared after each step)"
                )
            signals = LayerSignals(layer, inputs, self.options, generator)
            losses[name] = self.regularization(signals, coefficients)
        return losses

    def alignment_loss(
        self,
        model: nn.Module,
        epoch: float = 0.0,
        train_epochs: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Σ over layers of R (a zero tensor for rules without R)."""
        losses = list(self.layer_losses(model, epoch, train_epochs, generator).values())
        if not losses:
            reference = next(model.parameters())
            return torch.zeros((), device=reference.device, dtype=reference.dtype)
        return torch.stack([loss.to(losses[0].dtype) for loss in losses]).sum()

    def describe(self) -> dict:
        """The resolved rule as plain values, for run records."""
        return {
            "name": self.name,
            "coefficients": {k: vars(v) for k, v in self.coefficients.items()},
            "options": vars(self.options),
            "reconstruction_reversal": self.reconstruction_reversal,
            "reconstruction_amp": self.reconstruction_amp,
            "use_sparse": self.use_sparse,
            "sign_symmetry_scaled": self.sign_symmetry_scaled,
        }


def make_rule(
    name: str,
    *,
    alpha=None,
    beta=None,
    gamma=None,
    coefficient_scale: float = 1.0,
    weight_decay: float | None = None,
    options: AlignmentOptions | Mapping | None = None,
    **rule_options,
) -> LearningRule:
    """A learning rule with the spec's default coefficients unless given.

    ``alpha`` / ``beta`` / ``gamma``: a number, a ``CoefficientSchedule`` or its
    fields as a mapping. ``coefficient_scale`` multiplies the defaults (not given
    values): the quick scale's factor for runs ~1,000× shorter than ImageNet.
    Kolen-Pollack's α defaults to ``weight_decay / 2`` (equal decays, so W − B̃ → 0;
    §12.2); ``alpha=KP_CODE_DEFAULT_ALPHA`` reproduces the original code.
    ``options``: ``AlignmentOptions`` (or its fields); ``rule_options``: the
    ``LearningRule`` switches (reconstruction_reversal, ...).
    """
    if name not in RULES:
        raise ValueError(f"unknown learning rule {name!r}; choose one of {RULES}")
    given = {"alpha": alpha, "beta": beta, "gamma": gamma}
    defaults = dict(DEFAULT_COEFFICIENTS.get(name, {}))
    if name == "kolen_pollack" and alpha is None:
        if weight_decay is None:
            raise ValueError(
                "kolen_pollack needs weight_decay (its α defaults to weight_decay/2, "
                "the equal decays under which W - B̃ -> 0) or an explicit alpha "
                f"({KP_CODE_DEFAULT_ALPHA} reproduces the original code)"
            )
        given["alpha"] = weight_decay / 2
    unused = [k for k, v in given.items() if v is not None and k not in defaults]
    if unused:
        raise ValueError(f"rule {name!r} takes no coefficient(s) {unused}")
    coefficients = {}
    for key, default in defaults.items():
        value = given[key]
        coefficients[key] = (
            CoefficientSchedule(default * coefficient_scale)
            if value is None
            else _as_schedule(value)
        )
    if isinstance(options, Mapping):
        options = AlignmentOptions(**options)
    return LearningRule(
        name,
        coefficients,
        options if options is not None else AlignmentOptions(),
        **rule_options,
    )
