"""The five alignment primitives and the per-layer signals they are computed from
(credit_assignment.md §2 steps 1-7, §3).

Every primitive is a batch mean of a sum over units (all output positions and channels
of a conv), with no factor ½. The signals are built from the detached layer input and
the detached forward weight (unless ``update_forward``), so an alignment loss made of
them trains only the backward weights B and never leaks into W or earlier layers.

Layouts: B is stored in W's shape (the spec's B̃), so the kernel primitives need no
transpose; projections are F = x·W and G = x·B̃ (a conv with W and with B),
reconstructions F·B and G·Wᵀ (transposed convs back to the input's shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

INPUT_DISTRIBUTIONS = ("normal", "uniform")
_ACTIVATIONS = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ a ⊙ b over all elements as one BLAS dot product: a single pass without the
    temporary of ``(a * b).sum()`` (about 4x faster on a ResNet kernel; equal up to the
    order of float summation)."""
    return torch.dot(a.reshape(-1), b.reshape(-1))


class _SumOfSquares(torch.autograd.Function):
    """Σt² whose backward is the single pass t·(2g). Autograd's ``t.square().sum()``
    takes three passes over t (t¹, ·2, ·g), which over every kernel of a ResNet is a
    noticeable part of a step."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(t)
        return inner(t, t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (t,) = ctx.saved_tensors
        return t * (2 * grad)


def sum_of_squares(t: torch.Tensor) -> torch.Tensor:
    """Σt² over all elements (``t.square().sum()`` up to summation order, with a
    cheaper forward and backward)."""
    if not t.requires_grad:
        return inner(t, t)
    return _SumOfSquares.apply(t)


def _batch_mean_of_squares(values: torch.Tensor) -> torch.Tensor:
    """mean_n ‖values_n‖²: the sum over every axis but the first, the mean over the
    first (the batch)."""
    return sum_of_squares(values) / values.shape[0]


def decay(forward_kernel: torch.Tensor, backward_kernel: torch.Tensor) -> torch.Tensor:
    """ΣW² + ΣB²; gradient 2B̃ on B̃."""
    return sum_of_squares(forward_kernel) + sum_of_squares(backward_kernel)


def self_alignment(
    forward_kernel: torch.Tensor, backward_kernel: torch.Tensor
) -> torch.Tensor:
    """The "self" primitive −Σ(W ⊙ B̃) = −tr(WᵀB̃); gradient −W. Needs W at B's synapse."""
    return -inner(forward_kernel, backward_kernel)


def amp(
    forward_projection: torch.Tensor, backward_projection: torch.Tensor
) -> torch.Tensor:
    """−mean_n ⟨F_n, G_n⟩ = −tr(Wᵀ Σ_x B̃); gradient −Σ_x W."""
    return -inner(forward_projection, backward_projection) / forward_projection.shape[0]


def sparse(
    forward_projection: torch.Tensor, backward_projection: torch.Tensor
) -> torch.Tensor:
    """mean_n ‖F_n‖² + mean_n ‖G_n‖²; gradient 2 Σ_x B̃."""
    return _batch_mean_of_squares(forward_projection) + _batch_mean_of_squares(
        backward_projection
    )


def null(
    forward_reconstruction: torch.Tensor | None,
    backward_reconstruction: torch.Tensor | None,
) -> torch.Tensor:
    """mean_n ‖(F B)_n‖² + mean_n ‖(G Wᵀ)_n‖²; a term given as None counts as zero
    (information alignment uses one of the two)."""
    terms = [
        _batch_mean_of_squares(r)
        for r in (forward_reconstruction, backward_reconstruction)
        if r is not None
    ]
    if not terms:
        raise ValueError("null needs at least one reconstruction")
    return sum(terms[1:], terms[0])


PRIMITIVES = {
    "decay": decay,
    "self": self_alignment,
    "amp": amp,
    "sparse": sparse,
    "null": null,
}


@dataclass(frozen=True)
class AlignmentOptions:
    """How a layer's alignment signals are formed (the original's AlignmentBase flags).

    ``input_distribution``: replace the input by noise of its shape, ``normal`` or
    ``uniform``, standard deviation ``input_stddev`` (weight mirror's noise mode).
    ``center_input`` / ``normalize_input``: per example, over all features;
    ``batch_center_backward_input``: subtract the batch mean from G's input.
    ``use_bias_forward`` / ``use_bias_backward``: add the (detached) layer bias to F / G.
    ``activation_forward`` / ``activation_backward``: apply the layer's
    ``alignment_activation`` (or ``activation_override``) to F / G before the
    reconstructions. The ``*_output`` switches centre / normalise / batch-centre the
    projections and reconstructions afterwards. ``update_forward``: let the alignment
    loss train W too (off in every rule of the paper).
    """

    update_forward: bool = False
    input_distribution: str | None = None
    input_stddev: float = 1.0
    use_bias_forward: bool = True
    use_bias_backward: bool = True
    activation_override: str | None = None
    activation_forward: bool = False
    activation_backward: bool = False
    batch_center_backward_input: bool = False
    center_input: bool = False
    normalize_input: bool = False
    batch_center_forward_output: bool = False
    center_forward_output: bool = False
    normalize_forward_output: bool = False
    center_backward_output: bool = False
    normalize_backward_output: bool = False

    def __post_init__(self):
        if (
            self.input_distribution is not None
            and self.input_distribution not in INPUT_DISTRIBUTIONS
        ):
            raise ValueError(
                f"unknown input_distribution {self.input_distribution!r}; choose one "
                f"of {INPUT_DISTRIBUTIONS} or None (the layer's real input)"
            )
        if not self.input_stddev > 0:
            raise ValueError(f"input_stddev must be > 0, got {self.input_stddev}")
        if (
            self.activation_override is not None
            and self.activation_override not in _ACTIVATIONS
        ):
            raise ValueError(
                f"unknown activation_override {self.activation_override!r}; choose "
                f"one of {sorted(_ACTIVATIONS)}"
            )


def _batch_center(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(dim=0, keepdim=True)


def _center(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1)
    return (flat - flat.mean(dim=1, keepdim=True)).reshape(x.shape)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """Centre then scale to unit norm, per example (TF l2_normalize, eps 1e-12)."""
    flat = x.reshape(x.shape[0], -1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    norm = flat.square().sum(dim=1, keepdim=True).clamp_min(1e-12).sqrt()
    return (flat / norm).reshape(x.shape)


def random_like(
    x: torch.Tensor, kind: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Standard ``normal`` or U[0, 1) (``uniform``) draws of x's shape, dtype and
    device; drawn on the generator's device when it has one (a CPU generator then
    serves a GPU run, reproducibly)."""
    device = x.device if generator is None else generator.device
    draw = torch.randn if kind == "normal" else torch.rand
    values = draw(x.shape, generator=generator, device=device, dtype=x.dtype)
    return values.to(x.device)


def noise_like(
    x: torch.Tensor,
    distribution: str,
    stddev: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Noise of x's shape: N(0, stddev²), or uniform with the same standard deviation."""
    if distribution == "normal":
        values = random_like(x, "normal", generator)
        return values if stddev == 1.0 else values.mul_(stddev)
    half_width = (12 * stddev**2) ** 0.5 / 2
    return (2 * random_like(x, "uniform", generator) - 1) * half_width


class LayerSignals:
    """The kernels, projections and reconstructions of one feedback layer for one
    batch, each computed on first use (a rule pays only for what it reads)."""

    def __init__(
        self,
        layer,
        inputs: torch.Tensor | None,
        options: AlignmentOptions = AlignmentOptions(),
        generator: torch.Generator | None = None,
    ):
        self.layer = layer
        self.options = options
        self._raw_inputs = None if inputs is None else inputs.detach()
        self._generator = generator
        weight = layer.weight
        self.forward_kernel = weight if options.update_forward else weight.detach()
        self.backward_kernel = layer.backward_weight
        self.bias = None if layer.bias is None else layer.bias.detach()

    @cached_property
    def inputs(self) -> torch.Tensor:
        """The layer input after noise replacement and centring / normalising."""
        if self._raw_inputs is None:
            raise ValueError(
                "this alignment needs the layer input, but none was recorded: run the "
                "model's forward pass after rule.attach(model)"
            )
        x = self._raw_inputs
        o = self.options
        if o.input_distribution is not None:
            x = noise_like(x, o.input_distribution, o.input_stddev, self._generator)
        if o.center_input:
            x = _center(x)
        if o.normalize_input:
            x = _normalize(x)
        return x

    def _activation(self):
        name = self.options.activation_override or getattr(
            self.layer, "alignment_activation", None
        )
        return None if name is None else _ACTIVATIONS[name]

    @cached_property
    def _backward_input(self) -> torch.Tensor:
        """G's input: the layer input, batch-centred if the options say so."""
        x = self.inputs
        return _batch_center(x) if self.options.batch_center_backward_input else x

    # F and G are formed separately, so that a rule that needs amp(F, G) but not G
    # itself (see ``projection_amp``) does not pay for G.
    @cached_property
    def _activated_forward(self) -> torch.Tensor:
        o = self.options
        forward = self.layer.project(self.inputs, self.forward_kernel)
        if self.bias is not None and o.use_bias_forward:
            forward = self.layer.add_bias(forward, self.bias)
        activation = self._activation()
        if activation is not None and o.activation_forward:
            forward = activation(forward)
        return forward

    @cached_property
    def _activated_backward(self) -> torch.Tensor:
        o = self.options
        backward = self.layer.project(self._backward_input, self.backward_kernel)
        if self.bias is not None and o.use_bias_backward:
            backward = self.layer.add_bias(backward, self.bias)
        activation = self._activation()
        if activation is not None and o.activation_backward:
            backward = activation(backward)
        return backward

    def _standardize(self, x: torch.Tensor, side: str) -> torch.Tensor:
        o = self.options
        if getattr(o, f"center_{side}_output"):
            x = _center(x)
        if getattr(o, f"normalize_{side}_output"):
            x = _normalize(x)
        if side == "forward" and o.batch_center_forward_output:
            x = _batch_center(x)
        return x

    @cached_property
    def forward_projection(self) -> torch.Tensor:
        """F = x·W (+ bias, activation, standardisation as the options say)."""
        return self._standardize(self._activated_forward, "forward")

    @cached_property
    def backward_projection(self) -> torch.Tensor:
        """G = x·B̃ (+ bias, activation, standardisation as the options say)."""
        return self._standardize(self._activated_backward, "backward")

    @cached_property
    def forward_reconstruction(self) -> torch.Tensor:
        """F·B: the forward projection sent back through B."""
        raw = self.layer.transpose_project(
            self._activated_forward, self.backward_kernel, self.inputs.shape
        )
        return self._standardize(raw, "forward")

    @cached_property
    def backward_reconstruction(self) -> torch.Tensor:
        """G·Wᵀ: the backward projection sent back through W."""
        raw = self.layer.transpose_project(
            self._activated_backward, self.forward_kernel, self.inputs.shape
        )
        return self._standardize(raw, "backward")

    def _forward_standardized(self) -> bool:
        o = self.options
        return (
            o.center_forward_output
            or o.normalize_forward_output
            or o.batch_center_forward_output
        )

    def _backward_is_projection(self) -> bool:
        """Whether G is x_b·B̃ (+ bias) as it stands (no activation, no
        standardisation) and F takes no gradient, so that ⟨F, G⟩ is affine in B̃."""
        o = self.options
        transformed = (
            (o.activation_backward and self._activation() is not None)
            or o.center_backward_output
            or o.normalize_backward_output
        )
        return not (o.update_forward or transformed)

    def projection_amp(self) -> torch.Tensor:
        """amp(F, G), formed the cheapest way given what is computed already.

        Where G is x_b·B̃ (+ bias), ⟨F, x_b·B̃⟩ is linear in B̃ and two forms spare G's
        forward pass and its kernel gradient:

        - with the forward reconstruction R = F·B̃ already formed (information
          alignment), by adjointness ⟨F, x_b·B̃⟩ = ⟨R, x_b⟩: the gradient reaches B̃
          through R's, together with the null term's (one kernel gradient for both);
        - otherwise ⟨F, x_b·B̃⟩ = ⟨K, B̃⟩ with K the layer's kernel gradient for
          input x_b and output gradient F (one kernel gradient, gradient −K/n).

        Both equal amp(F, G) up to float rounding. When G is formed already (a rule
        that reads it, e.g. through ``sparse``) or transformed, amp(F, G) itself.
        """
        if "_activated_backward" in self.__dict__ or not self._backward_is_projection():
            return amp(self.forward_projection, self.backward_projection)
        forward = self.forward_projection
        backward_input = self._backward_input
        if "forward_reconstruction" in self.__dict__ and not (
            self._forward_standardized()
        ):
            product = inner(self.forward_reconstruction, backward_input)
        else:
            with torch.no_grad():
                kernel = self.layer.kernel_gradient(backward_input, forward)
            product = inner(kernel, self.backward_kernel)
        if self.bias is not None and self.options.use_bias_backward:
            # ⟨F, b⟩ of G's bias: one example's bias map against all of F
            bias_map = self.layer.add_bias(torch.zeros_like(forward[:1]), self.bias)
            product = product + (forward * bias_map).sum()
        return -product / forward.shape[0]
